"""Two runs of one pipeline at once: the second is refused, the store stays sound."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from pathlib import Path

from tests.fake_server import FakeServer
from tests.reliability.helpers import assert_exactly_once_and_aligned, generation_pipeline
from tests.reliability.test_resume import ROWS, finish, start_job, wait_for_requests

from potstill.errors import PipelineBusyError


def test_a_second_run_at_the_same_time_is_refused_naming_the_first(
    fake_server: FakeServer, tmp_path: Path
) -> None:
    fake_server.configure(latency_s=0.03)
    first = start_job(fake_server, tmp_path)
    wait_for_requests(fake_server, 20, first)

    second = start_job(fake_server, tmp_path)
    _, stderr = second.communicate(timeout=60)
    assert second.returncode != 0
    assert "PipelineBusyError" in stderr
    assert f"process {first.pid} on host {socket.gethostname()!r}" in stderr
    assert "Wait for that run to finish" in stderr

    assert_exactly_once_and_aligned(finish(first), ROWS)
    fake_server.reset()
    # The store the first run left is whole: the next run reads it back, sends nothing.
    assert_exactly_once_and_aligned(finish(start_job(fake_server, tmp_path)), ROWS)
    assert fake_server.requests == []


def test_a_killed_run_never_blocks_the_next(fake_server: FakeServer, tmp_path: Path) -> None:
    fake_server.configure(latency_s=0.03)
    job = start_job(fake_server, tmp_path)
    wait_for_requests(fake_server, 20, job)
    job.kill()
    job.wait(timeout=10)
    assert (tmp_path / "resume-job" / "run.lock").exists()  # left behind, but not held

    assert_exactly_once_and_aligned(finish(start_job(fake_server, tmp_path)), ROWS)


def test_two_runs_in_one_process_at_once_are_refused(fake_server: FakeServer) -> None:
    fake_server.configure(latency_s=0.05)
    pipeline, _ = generation_pipeline(fake_server, 40)

    async def both() -> list:
        return await asyncio.gather(pipeline.arun(), pipeline.arun(), return_exceptions=True)

    results = asyncio.run(both())
    refused = [r for r in results if isinstance(r, PipelineBusyError)]
    assert len(refused) == 1, results
    assert f"this process ({os.getpid()})" in str(refused[0])
    [done] = [r for r in results if not isinstance(r, BaseException)]
    assert_exactly_once_and_aligned(done["default"]["train"], 40)
    # Once the first run is over the pipeline can run again.
    assert_exactly_once_and_aligned(pipeline.run()["default"]["train"], 40)


def test_a_batch_file_overlapping_another_is_never_read_twice(fake_server: FakeServer) -> None:
    pipeline, task = generation_pipeline(fake_server, 30)
    pipeline.run()
    [folder] = (pipeline.cache_dir / "steps").glob(f"{task.name}-*")
    # What two writers at once used to leave: a file covering batches another file holds.
    [first] = sorted(folder.glob("000000*.arrow"))
    for name in {"000000.arrow", "000000-000001.arrow", "000001-000002.arrow"} - {first.name}:
        shutil.copyfile(first, folder / name)

    rows = pipeline.run()["default"]["train"]
    assert_exactly_once_and_aligned(rows, 30)
