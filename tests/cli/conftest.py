"""Fixtures for the CLI tests: a saved pipeline and an in-process runner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.cli.helpers import build_pipeline
from typer.testing import CliRunner

from potstill.cli.app import app


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """rich wraps at $COLUMNS; a wide terminal keeps messages on one line for asserts."""
    monkeypatch.setenv("COLUMNS", "250")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def invoke(runner: CliRunner):
    """Runs `potstill <args>` in-process and returns click's Result."""

    def _invoke(*args: str) -> Any:
        return runner.invoke(app, list(args), catch_exceptions=False)

    return _invoke


@pytest.fixture
def config_file(openai_env: Any, tmp_path: Path) -> Path:
    """The pipeline saved as YAML (its base_url is the loopback server's)."""
    return build_pipeline().save(tmp_path / "pipeline.yaml", format="yaml")
