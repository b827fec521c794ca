"""Fixtures for the gallery steps: a private `datasets` cache and the loopback Hub."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fake_hub import FakeHub


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`datasets` writes what it loads under a temporary directory, not the user's cache,
    and the Hub is off (`HF_HUB_OFFLINE` is read once, when `huggingface_hub` is imported,
    which may be before the suite's environment sets it): only `fake_hub` turns it on."""
    from datasets import config
    from huggingface_hub import constants

    cache = tmp_path / "hf-datasets"
    monkeypatch.setattr(config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    monkeypatch.setattr(config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


@pytest.fixture(scope="session")
def _session_hub() -> Iterator[FakeHub]:
    with FakeHub() as hub:
        yield hub


@pytest.fixture
def fake_hub(
    _session_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeHub]:
    """The loopback Hub, empty, with `huggingface_hub` and `datasets` pointed at it
    (`HF_ENDPOINT`, `HF_TOKEN`, caches in `tmp_path`)."""
    _session_hub.reset()
    _session_hub.point_clients(monkeypatch, tmp_path / "hf")
    yield _session_hub
    assert _session_hub.unknown_routes == [], "the clients used routes the fake Hub lacks"
