"""Fixtures shared by the whole suite: an isolated environment and the loopback server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fake_server import FakeServer

# Provider env vars that must not leak from the developer's shell into tests.
_PROVIDER_ENV = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "AZURE_OPENAI_API_KEY",
    "AZURE_OPENAI_ENDPOINT",
    "OPENAI_API_VERSION",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "COHERE_API_KEY",
    "COHERE_BASE_URL",
    "GROQ_API_KEY",
    "GROQ_BASE_URL",
    "MISTRAL_API_KEY",
    "TOGETHER_API_KEY",
    "TOGETHER_BASE_URL",
    "ANYSCALE_API_KEY",
    "ANYSCALE_BASE_URL",
    "HF_TOKEN",
    "OLLAMA_HOST",
)


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every test gets its own cache directory, no progress bars and no provider keys."""
    for name in _PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("POTSTILL_CACHE_DIR", str(tmp_path / "potstill-cache"))
    monkeypatch.setenv("POTSTILL_PROGRESS", "0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def _session_server() -> Iterator[FakeServer]:
    with FakeServer() as server:
        yield server


@pytest.fixture
def fake_server(_session_server: FakeServer) -> Iterator[FakeServer]:
    """The loopback LLM API server, with its recordings and config reset for each test."""
    _session_server.reset()
    yield _session_server
    _session_server.reset()


@pytest.fixture
def openai_env(fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    """Points `OPENAI_BASE_URL`/`OPENAI_API_KEY` at the loopback server."""
    monkeypatch.setenv("OPENAI_BASE_URL", fake_server.openai_base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    return fake_server
