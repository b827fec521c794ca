"""`potstill pipeline info`, and configs served over HTTP."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from tests.cli.helpers import ANSWERS

from potstill.distiset import Distiset
from potstill.mixins.runtime_parameters import RuntimeParameter
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts, Step, StepInput


class NeedsFactor(Step):
    """Multiplies nothing; it only has a required runtime parameter.

    Attributes:
        factor: how much to multiply by.
    """

    factor: RuntimeParameter[int]

    @property
    def inputs(self) -> list[str]:
        return ["instruction"]

    def process(self, inputs: StepInput):  # type: ignore[override]
        yield inputs


def test_info_lists_steps_connections_and_parameters_with_descriptions(
    config_file: Path, invoke: Any
) -> None:
    result = invoke("pipeline", "info", "--config", str(config_file))
    assert result.exit_code == 0, result.output
    out = result.output
    for text in (
        "cli-test",
        "Two questions about capitals.",
        "LoadDataFromDicts",
        "TextGeneration",
        "OpenAILLM (gpt-4o-mini)",
        "instruction, system_prompt -> generation, model_name",
    ):
        assert text in out, text
    # connections, with the leaf marked
    assert "load" in out and "(leaf: becomes a dataset)" in out
    # runtime parameters, with descriptions from fields and from agenerate's docstring
    assert "input_batch_size = 50: The number of rows that will contain the batches" in out
    assert "temperature = 1.0 (default): the sampling temperature." in out
    assert "max_new_tokens = 128 (default): the maximum number of tokens to generate" in out
    assert "timeout = 120.0: The maximum time in seconds to wait for a response" in out


def test_info_masks_secrets(config_file: Path, invoke: Any) -> None:
    # openai_env set OPENAI_API_KEY=test-key, which the loaded LLM picked up.
    result = invoke("pipeline", "info", "--config", str(config_file))
    assert result.exit_code == 0
    assert "api_key = ********** (set)" in result.output
    assert "test-key" not in result.output


def test_info_marks_required_parameters(tmp_path: Path, invoke: Any) -> None:
    with Pipeline(name="required") as pipeline:
        LoadDataFromDicts(name="load", data=[{"instruction": "x"}]) >> NeedsFactor(name="needs")
    config = pipeline.save(tmp_path / "p.yaml", format="yaml")
    result = invoke("pipeline", "info", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "factor (required) = not set: how much to multiply by." in result.output

    run = invoke("pipeline", "run", "--config", str(config), "-o", str(tmp_path / "o"))
    assert run.exit_code == 1
    assert "missing required runtime parameter 'factor'" in run.output

    run = invoke(
        "pipeline",
        "run",
        "--config",
        str(config),
        "-o",
        str(tmp_path / "o"),
        "-p",
        "needs.factor=2",
    )
    assert run.exit_code == 0, run.output


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A loopback HTTP server serving a temp directory."""
    root = tmp_path / "served"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("name", ["pipeline.yaml", "pipeline.json"])
def test_a_config_url_runs(
    name: str, http_root: tuple[Path, str], openai_env: Any, tmp_path: Path, invoke: Any
) -> None:
    from tests.cli.helpers import build_pipeline

    root, base = http_root
    build_pipeline().save(root / name, format=name.rsplit(".", 1)[1])  # type: ignore[arg-type]

    info = invoke("pipeline", "info", "--config", f"{base}/{name}")
    assert info.exit_code == 0, info.output
    assert "text_generation" in info.output

    output = tmp_path / "out"
    run = invoke("pipeline", "run", "--config", f"{base}/{name}", "--output", str(output))
    assert run.exit_code == 0, run.output
    assert Distiset.load_from_disk(output)["default"]["train"]["generation"] == ANSWERS


def test_a_missing_config_url_fails_cleanly(http_root: tuple[Path, str], invoke: Any) -> None:
    _, base = http_root
    result = invoke("pipeline", "info", "--config", f"{base}/nope.yaml")
    assert result.exit_code == 1
    assert "HTTP 404" in result.output
    assert "Traceback" not in result.output
