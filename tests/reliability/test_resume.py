"""Crash-safe resume: kill -9 or Ctrl+C at any moment, then run again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.fake_server import FakeServer
from tests.reliability.helpers import assert_exactly_once_and_aligned, make_llm

from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration

ROOT = Path(__file__).resolve().parents[2]
ROWS = 300
MAX_CONCURRENT = 10


def start_job(server: FakeServer, cache: Path) -> subprocess.Popen[str]:
    return start_module(
        "tests.reliability.resume_job", server.openai_base_url, str(cache), str(ROWS)
    )


def start_module(module: str, *args: str, **env: str) -> subprocess.Popen[str]:
    """`python -m MODULE ARGS...` in the repository (with this checkout's potstill), its
    output captured; `env` is added to the environment."""
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
            **env,
        },
    )


def wait_for_requests(server: FakeServer, count: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while server.state.request_count < count:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the job never reached the kill point"
        time.sleep(0.005)


def finish(process: subprocess.Popen[str]) -> dict:
    stdout, stderr = process.communicate(timeout=120)  # a hang fails the test
    assert process.returncode == 0, stderr
    return json.loads(stdout.strip().splitlines()[-1])


def answered(server: FakeServer) -> int:
    return sum(1 for r in server.requests if r.outcome == "ok")


@pytest.mark.parametrize("kill_after", [0, 25, 150, 295])
def test_kill_9_at_any_moment_then_resume(
    fake_server: FakeServer, tmp_path: Path, kill_after: int
) -> None:
    fake_server.configure(latency_s=0.03)
    job = start_job(fake_server, tmp_path)
    if kill_after:
        wait_for_requests(fake_server, kill_after, job)
    else:
        time.sleep(0.3)  # still importing / loading: nothing sent yet
    job.send_signal(signal.SIGKILL)
    job.wait(timeout=10)

    result = finish(start_job(fake_server, tmp_path))
    assert_exactly_once_and_aligned(result, ROWS)
    # Only requests in flight at the kill can have been sent twice.
    assert answered(fake_server) <= ROWS + 2 * MAX_CONCURRENT


def test_ctrl_c_stops_gracefully_and_the_next_run_resumes(
    fake_server: FakeServer, tmp_path: Path
) -> None:
    fake_server.configure(latency_s=0.03)
    job = start_job(fake_server, tmp_path)
    wait_for_requests(fake_server, 100, job)
    job.send_signal(signal.SIGINT)
    _, stderr = job.communicate(timeout=30)
    assert job.returncode != 0
    assert "interrupted" in stderr and "resume" in stderr
    before = answered(fake_server)
    assert before < ROWS

    result = finish(start_job(fake_server, tmp_path))
    assert_exactly_once_and_aligned(result, ROWS)
    assert answered(fake_server) <= ROWS + 2 * MAX_CONCURRENT


def test_a_completed_run_is_returned_from_the_store(
    fake_server: FakeServer, tmp_path: Path
) -> None:
    first = finish(start_job(fake_server, tmp_path))
    sent = len(fake_server.requests)
    second = finish(start_job(fake_server, tmp_path))
    assert second == first
    assert len(fake_server.requests) == sent


def chained_pipeline(server: FakeServer) -> Pipeline:
    with Pipeline(name="chain") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": f"q{i}"} for i in range(6)])
        first = TextGeneration(name="first", llm=make_llm(server))
        second = TextGeneration(
            name="second",
            llm=make_llm(server),
            input_mappings={"instruction": "generation"},
            output_mappings={"generation": "answer", "model_name": "second_model"},
        )
        load >> first >> second
    return pipeline


def asked(server: FakeServer) -> list[str]:
    return sorted(r.body["messages"][-1]["content"] for r in server.requests)


def test_a_changed_parameter_invalidates_only_what_it_affects(fake_server: FakeServer) -> None:
    pipeline = chained_pipeline(fake_server)
    rows = pipeline.run()["default"]["train"]
    assert rows["answer"] == [f"Echo: Echo: q{i}" for i in range(6)]
    assert len(fake_server.requests) == 12

    fake_server.reset()
    pipeline.run(params={"second": {"llm": {"generation_kwargs": {"temperature": 0.2}}}})
    assert asked(fake_server) == sorted(f"Echo: q{i}" for i in range(6))  # only `second` ran

    fake_server.reset()
    pipeline.run(params={"first": {"llm": {"max_concurrent_requests": 3}}})
    assert asked(fake_server) == []  # execution-only settings change nothing

    fake_server.reset()
    pipeline.run(params={"first": {"llm": {"generation_kwargs": {"temperature": 0.4}}}})
    assert len(fake_server.requests) == 12  # `first` changed, so `second` sees new input
