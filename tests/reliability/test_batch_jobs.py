"""Provider batch jobs in a pipeline run (`use_offline_batch_generation=True`): job ids in the
step's store, a killed run that re-attaches to its pending job, failed and expired rows
retried (online or in a new job) with what the jobs answered kept, online steps beside, and
the job status in the progress display. The LLM side is in `tests/providers/test_batch_jobs.py`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tests.core.fakes import RecordingProgress
from tests.fake_server import FakeServer
from tests.reliability import batch_job
from tests.reliability.helpers import assert_exactly_once_and_aligned, make_llm

import potstill.pipeline.base as pipeline_base
from potstill.pipeline import Pipeline
from potstill.pipeline.step_batches import StepBatches
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration

ROOT = Path(__file__).resolve().parents[2]
POLL = 0.01


def batch_llm(server: FakeServer, **fields: Any) -> Any:
    return make_llm(
        server,
        use_offline_batch_generation=True,
        offline_batch_generation_block_until_done=POLL,
        **fields,
    )


def pipeline_of(
    server: FakeServer, instructions: list[str], batch_size: int, name: str = "jobs"
) -> tuple[Pipeline, TextGeneration]:
    with Pipeline(name=name) as pipeline:
        load = LoadDataFromDicts(
            data=[{"instruction": text} for text in instructions], batch_size=batch_size
        )
        task = TextGeneration(name="generate", llm=batch_llm(server), input_batch_size=batch_size)
        load >> task
    return pipeline, task


def step_store(pipeline: Pipeline, step: str) -> StepBatches:
    [folder] = (pipeline.cache_dir / "steps").glob(f"{step}-*")
    return StepBatches(folder)


def jobs_created(server: FakeServer) -> int:
    return sum(1 for r in server.requests if (r.method, r.path) == ("POST", "/v1/batches"))


def online_prompts(server: FakeServer) -> list[str]:
    return sorted(
        r.body["messages"][-1]["content"]
        for r in server.requests
        if r.path == "/v1/chat/completions"
    )


def test_a_step_sends_its_batches_as_jobs_and_records_them_in_its_store(
    fake_server: FakeServer,
) -> None:
    fake_server.configure(batch_polls=2)
    pipeline, _ = pipeline_of(fake_server, [f"q{i}" for i in range(12)], batch_size=5)

    rows = pipeline.run()["default"]["train"]

    assert_exactly_once_and_aligned(rows, 12)
    assert jobs_created(fake_server) == 3 and online_prompts(fake_server) == []
    recorded = step_store(pipeline, "generate").jobs()
    assert sorted(recorded) == sorted(job.id for job in fake_server.state.batches.jobs("openai"))
    assert sorted(len(job["requests"]) for job in recorded.values()) == [2, 5, 5]
    assert {job["ended"] for job in recorded.values()} == {"completed"}
    # The answers are in the step's journal, under the keys online requests have.
    journal = (step_store(pipeline, "generate").path / "requests.jsonl").read_bytes()
    assert len(journal.splitlines()) == 12


def test_an_expired_job_s_rows_are_retried_online_and_its_answers_are_kept(
    fake_server: FakeServer,
) -> None:
    questions = ["q0", "q1", "q2", "q3 [[batch_expire]]", "q4", "q5"]
    pipeline, _ = pipeline_of(fake_server, questions, batch_size=6)

    first = pipeline.run()["default"]["train"]
    assert first["generation"][:3] == ["Echo: q0", "Echo: q1", "Echo: q2"]
    assert first["generation"][3:] == [None, None, None]
    errors = [row["error_generate"] for row in first["potstill_metadata"][3:]]
    assert all("expired" in error for error in errors), errors
    assert step_store(pipeline, "generate").jobs().popitem()[1]["ended"] == "expired"

    fake_server.reset()
    second = pipeline.run(params={"generate": {"llm": {"use_offline_batch_generation": False}}})
    rows = second["default"]["train"]

    assert rows["instruction"] == questions
    assert rows["generation"][:3] == ["Echo: q0", "Echo: q1", "Echo: q2"]
    assert all(text is not None for text in rows["generation"])
    assert online_prompts(fake_server) == sorted(questions[3:])  # only what the job missed
    assert jobs_created(fake_server) == 0


def test_a_rerun_in_batch_mode_submits_a_new_job_of_the_failed_requests_only(
    fake_server: FakeServer,
) -> None:
    questions = [f"q{i}" for i in range(5)]
    questions[1] = "q1 [[fail_first=1 status=500]]"  # fails in the first job only
    pipeline, _ = pipeline_of(fake_server, questions, batch_size=5)

    first = pipeline.run()["default"]["train"]
    assert [text is None for text in first["generation"]] == [False, True, False, False, False]

    second = pipeline.run()["default"]["train"]
    assert all(text is not None for text in second["generation"])
    first_job, second_job = reversed(fake_server.state.batches.jobs("openai"))
    assert len(first_job.requests) == 5
    assert [request.key_text for request in second_job.requests] == [questions[1]]
    assert online_prompts(fake_server) == []


def test_online_steps_run_beside_and_after_a_batch_step(fake_server: FakeServer) -> None:
    fake_server.configure(batch_polls=3)
    with Pipeline(name="mixed") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": f"q{i}"} for i in range(8)], batch_size=4)
        batched = TextGeneration(name="batched", llm=batch_llm(fake_server), input_batch_size=4)
        beside = TextGeneration(
            name="beside",
            llm=make_llm(fake_server),
            input_batch_size=4,
            output_mappings={"generation": "online", "model_name": "online_model"},
        )
        after = TextGeneration(
            name="after",
            llm=make_llm(fake_server),
            input_mappings={"instruction": "generation"},
            output_mappings={"generation": "answer", "model_name": "answer_model"},
        )
        load >> [batched, beside]
        batched >> after

    distiset = pipeline.run()

    after_rows = distiset["after"]["train"]
    assert after_rows["generation"] == [f"Echo: q{i}" for i in range(8)]
    assert after_rows["answer"] == [f"Echo: Echo: q{i}" for i in range(8)]
    assert distiset["beside"]["train"]["online"] == [f"Echo: q{i}" for i in range(8)]
    assert jobs_created(fake_server) == 2
    expected_online = [f"q{i}" for i in range(8)] + [f"Echo: q{i}" for i in range(8)]
    assert online_prompts(fake_server) == sorted(expected_online)


def test_the_progress_display_shows_the_state_of_a_step_s_jobs(
    fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline_base, "Progress", RecordingProgress)
    RecordingProgress.instances.clear()
    fake_server.configure(batch_polls=3)
    pipeline, _ = pipeline_of(fake_server, [f"q{i}" for i in range(6)], batch_size=6)

    pipeline.run()

    shown = RecordingProgress.instances[-1].jobs["generate"]
    assert shown[0] == "job: 1 in_progress (2/6 requests)"
    assert shown[-1] == "job: 1 completed (6/6 requests)"


def start_run(server: FakeServer, cache: Path, rows: int) -> subprocess.Popen[str]:
    script = [sys.executable, "-m", "tests.reliability.batch_job"]
    return subprocess.Popen(
        [*script, server.openai_base_url, str(cache), str(rows)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])},
    )


def wait_for_a_check_of_the_job(server: FakeServer, process: subprocess.Popen[str]) -> None:
    """Until the run has looked at its job once (its id was recorded before that)."""
    deadline = time.monotonic() + 60
    while not any(r.method == "GET" and r.path.startswith("/v1/batches/") for r in server.requests):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run never checked its job"
        time.sleep(0.005)


def test_a_run_killed_while_its_job_is_pending_re_attaches_to_it(
    fake_server: FakeServer, tmp_path: Path
) -> None:
    fake_server.configure(batch_delay_s=600.0)  # the job cannot end while the run watches
    process = start_run(fake_server, tmp_path, 20)
    wait_for_a_check_of_the_job(fake_server, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    [job] = fake_server.state.batches.jobs("openai")
    assert not job.ended
    job.delay_s = 0.0  # the provider finishes it while no run is watching

    rows = batch_job.build(fake_server.openai_base_url, str(tmp_path), 20).run()
    assert_exactly_once_and_aligned(rows["default"]["train"], 20)
    assert jobs_created(fake_server) == 1  # re-attached, never submitted again
    assert fake_server.state.batches.jobs("openai") == [job] and job.ending == "completed"
    assert online_prompts(fake_server) == []

    # The step's store says the job was read: one more run sends nothing at all.
    sent = len(fake_server.requests)
    pipeline = batch_job.build(fake_server.openai_base_url, str(tmp_path), 20)
    assert_exactly_once_and_aligned(pipeline.run()["default"]["train"], 20)
    assert len(fake_server.requests) == sent
    assert step_store(pipeline, "generate").jobs()[job.id]["ended"] == "completed"
