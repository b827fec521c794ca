"""Fixtures for the hosted-provider tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.providers.helpers import unload_all


@pytest.fixture(autouse=True)
def _unload_llms() -> Iterator[None]:
    """Closes the SDK clients of the LLMs a test loaded, so none leaks into the next."""
    yield
    unload_all()
