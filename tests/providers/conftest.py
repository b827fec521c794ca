"""Fixtures for the hosted-provider tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.providers.cases import LITELLM_LOGGERS, ProviderCase
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


@pytest.fixture
def case(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> ProviderCase:
    """The provider case of a test parametrized over `cases.HOSTED` (`indirect=True`), with
    its environment prepared."""
    provider: ProviderCase = request.param
    if provider.setup is not None:
        provider.setup(monkeypatch, tmp_path)
    return provider
