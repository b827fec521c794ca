"""Fixtures for the migration tests: a clean GPU placement registry, offline LiteLLM."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.providers.contract import unload_all

from potstill.llms.mixins import cuda_device_placement as mixins


@pytest.fixture(autouse=True)
def _fresh_placements(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no CUDA device held by any LLM."""
    monkeypatch.setattr(mixins, "_PLACEMENTS", {})


@pytest.fixture(autouse=True)
def _offline_llms(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """LiteLLM stays offline; SDK clients opened by a test are closed after it."""
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    yield
    unload_all()
