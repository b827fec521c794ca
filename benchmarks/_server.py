"""Starts the loopback test server in a subprocess for the benchmarks."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
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
