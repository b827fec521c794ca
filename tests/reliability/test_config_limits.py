"""Configs cannot exhaust memory: YAML aliases and config sizes are bounded."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tests.cli.helpers import build_pipeline

from potstill.errors import PotstillUserError
from potstill.pipeline import Pipeline
from potstill.utils import serialization
from potstill.utils.serialization import read_file

# The classic "billion laughs" (9 levels of 9 aliases stand for 9**9 strings), as the
# rows of a pipeline's data.
BOMB = "\n".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(
            f"{name}: &{name} [{','.join([f'*{previous}'] * 9)}]"
            for previous, name in zip("abcdefgh", "bcdefghi")
        ),
        "pipeline:",
        "  name: bomb",
        "  steps:",
        "  - name: load",
        "    step:",
        "      type_info: {module: potstill.steps.generators.data, name: LoadDataFromDicts}",
        "      data: [{text: *i}]",
        "  connections: []",
    ]
)
MEMORY_CAP = 2 * 1024**3


def _capped_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def test_the_cli_refuses_a_yaml_alias_bomb_at_once(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BOMB)
    assert len(BOMB) < 600

    start = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "potstill.cli.app",
            "pipeline",
            "run",
            "--config",
            str(bomb),
            "--output",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_capped_memory,  # a regression fails here instead of eating the machine
        env={**os.environ, "COLUMNS": "250"},
    )
    elapsed = time.monotonic() - start

    assert result.returncode == 1, result.stderr[-2000:]
    assert "YAML aliases" in result.stderr and "billion laughs" in result.stderr
    assert "Traceback" not in result.stderr
    assert elapsed < 30


def test_reading_a_yaml_alias_bomb_fails_naming_the_file(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BOMB)

    with pytest.raises(
        PotstillUserError, match=r"bomb\.yaml.*expand it by \d{3},\d{3},\d{3} nodes"
    ):
        Pipeline.from_yaml(bomb)


def test_too_many_aliases_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "many.yaml"
    config.write_text("a: &a 1\nb: [" + ", ".join(["*a"] * 101) + "]\n")

    with pytest.raises(PotstillUserError, match="101 YAML aliases, more than 100"):
        read_file(config, "yaml")


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "loop.yaml"
    config.write_text("a: &a [1, *a]\n")

    with pytest.raises(PotstillUserError, match="recursive"):
        read_file(config, "yaml")


def test_a_config_with_a_few_aliases_still_loads(tmp_path: Path, openai_env: Any) -> None:
    # An LLM block written once and reused through an anchor, as people write YAML by hand.
    text = build_pipeline().save(tmp_path / "plain.yaml", format="yaml").read_text()
    config = tmp_path / "anchored.yaml"
    config.write_text(
        "shared: &retries 3\n" + text.replace("max_retries: 6", "max_retries: *retries")
    )

    pipeline = Pipeline.from_yaml(config)

    assert pipeline.dag.steps["text_generation"].llm.max_retries == 3


def test_a_config_larger_than_the_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serialization, "MAX_CONFIG_BYTES", 1000)
    config = tmp_path / "big.json"
    config.write_text('{"pipeline": {"steps": [], "padding": "' + "x" * 2000 + '"}}')

    with pytest.raises(PotstillUserError, match=r"big\.json.*more than a config may be"):
        read_file(config, "json")


def test_a_deeply_nested_config_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "deep.json"
    config.write_text("[" * 100_000 + "]" * 100_000)

    with pytest.raises(PotstillUserError, match="nested too deeply"):
        read_file(config, "json")
