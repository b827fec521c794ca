"""Starts the loopback test server in a subprocess for the benchmarks, and builds the
pipeline they time against it."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    """Runs `python -m tests.fake_server`; returns the process and its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_server", "--port", "0", "--latency", str(latency)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("FAKE_SERVER_URL="):
        process.kill()
        raise RuntimeError(f"the test server did not start: {line!r}")
    return process, line.split("=", 1)[1]


@contextlib.contextmanager
def running_server(latency: float) -> Iterator[str]:
    """Runs the test server for the block (see `start_server`); yields its base URL."""
    process, url = start_server(latency)
    try:
        yield url
    finally:
        process.terminate()
        process.wait()


@contextlib.contextmanager
def text_generation_pipeline(name: str, url: str, rows: int, **llm_fields: Any) -> Iterator[Any]:
    """`LoadDataFromDicts` (`rows` questions) `>> TextGeneration` with an `OpenAILLM` that
    calls the test server at `url`, in a `Pipeline` whose cache lives as long as the block.

    Args:
        name: the pipeline's name.
        url: the test server's base URL.
        rows: how many rows (one request each).
        **llm_fields: more `OpenAILLM` fields (concurrency, pacing limits).

    Yields:
        The pipeline, ready to `run`.
    """
    from potstill.llms import OpenAILLM
    from potstill.pipeline import Pipeline
    from potstill.steps import LoadDataFromDicts
    from potstill.steps.tasks import TextGeneration

    data = [{"instruction": f"question {i}"} for i in range(rows)]
    with tempfile.TemporaryDirectory() as cache_dir:
        with Pipeline(name=name, cache_dir=cache_dir, show_progress=False) as pipeline:
            llm = OpenAILLM(model="bench", base_url=f"{url}/v1", api_key="test-key", **llm_fields)
            LoadDataFromDicts(data=data) >> TextGeneration(llm=llm)
        yield pipeline


def server_get(url: str, path: str) -> Any:
    """GETs a JSON control endpoint of the test server."""
    with urllib.request.urlopen(f"{url}{path}") as response:
        return json.load(response)


def server_post(url: str, path: str, body: dict[str, Any]) -> Any:
    """POSTs JSON to a control endpoint of the test server."""
    request = urllib.request.Request(
        f"{url}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request) as response:
        return json.load(response)
