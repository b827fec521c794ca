"""Fixtures for the hosted-provider tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from tests.providers.cases import LITELLM_LOGGERS
from tests.providers.contract import unload_all


@pytest.fixture(autouse=True)
def _unload_llms() -> Iterator[None]:
    """Closes the SDK clients of the LLMs a test loaded, so none leaks into the next."""
    yield
    unload_all()


@pytest.fixture(autouse=True)
def _offline_litellm(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """LiteLLM fetches its model cost map from GitHub when first imported unless told not
    to; keep the tests offline wherever it is first imported. Logger levels changed by
    `LiteLLM(verbose=True)` are put back."""
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    levels = {name: logging.getLogger(name).level for name in LITELLM_LOGGERS}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
