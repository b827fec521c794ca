"""Exactly once on Ray: a driver killed with `kill -9`, a replica killed, a node lost, a batch
that kills its worker every time."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from tests.fake_server import FakeServer
from tests.on_ray.conftest import CLUSTER_ENV, RayCluster
from tests.on_ray.ray_job import MAX_CONCURRENT
from tests.on_ray.steps import CrashOn13
from tests.reliability.helpers import assert_exactly_once_and_aligned, generation_pipeline
from tests.reliability.test_resume import answered, finish, start_module

from potstill.pipeline import Pipeline
from potstill.pipeline.ray.pool import MAX_BATCH_RETRIES
from potstill.pipeline.ray.store_sink import FLUSH_SIZE
from potstill.steps import LoadDataFromDicts

pytestmark = pytest.mark.ray

ROWS = 200
# Sent again after a kill at most: the requests in flight, and the answers each of the two
# replicas had not handed to the store yet (see store_sink.py). The job's batches hold 100
# rows, so without the journal a kill after 150 answers would send most of them again.
RESENT_BOUND = MAX_CONCURRENT + 2 * FLUSH_SIZE


def start_job(cluster: RayCluster, server: FakeServer, cache: Path) -> subprocess.Popen[str]:
    return start_module(
        "tests.on_ray.ray_job",
        cluster.address,
        server.openai_base_url,
        str(cache),
        str(ROWS),
        **CLUSTER_ENV,
    )


def wait_until(condition: Callable[[], bool], what: str, process: Any = None) -> None:
    deadline = time.monotonic() + 90
    while not condition():
        if process is not None:
            assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"never reached: {what}"
        time.sleep(0.005)


@pytest.mark.parametrize("kill_after", [40, 150])
def test_driver_kill_9_then_rerun_gives_every_row_once(
    ray_cluster: RayCluster, fake_server: FakeServer, tmp_path: Path, kill_after: int
) -> None:
    fake_server.configure(latency_s=0.03)
    job = start_job(ray_cluster, fake_server, tmp_path)
    wait_until(lambda: answered(fake_server) >= kill_after, "the kill point", job)
    job.send_signal(signal.SIGKILL)
    job.wait(timeout=10)
    first = answered(fake_server)
    assert first < ROWS

    result = finish(start_job(ray_cluster, fake_server, tmp_path))

    assert_exactly_once_and_aligned(result, ROWS)
    assert answered(fake_server) <= ROWS + RESENT_BOUND


def replica_pids(pipeline_name: str, step: str) -> list[int]:
    import ray

    prefix = f"potstill-{pipeline_name}-{step}-"
    handles = [
        ray.get_actor(entry["name"], namespace=entry["namespace"])
        for entry in ray.util.list_named_actors(all_namespaces=True)
        if entry["name"].startswith(prefix)
    ]
    return [place["pid"] for place in ray.get([handle.ready.remote() for handle in handles])]


def run_in_background(pipeline: Pipeline, params: dict) -> tuple[threading.Thread, dict]:
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["distiset"] = pipeline.ray().run(params=params, use_cache=False)
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=target)
    thread.start()
    return thread, outcome


def test_a_killed_replica_is_restarted_and_its_batches_run_again(
    ray_cluster: RayCluster,
    fake_server: FakeServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_server.configure(latency_s=0.03)
    pipeline, _ = generation_pipeline(
        fake_server, ROWS, name="replica-kill", max_concurrent_requests=10
    )
    caplog.set_level(logging.WARNING, logger="potstill")
    params = {"text_generation_0": {"resources": {"replicas": 2}}}
    thread, outcome = run_in_background(pipeline, params)
    wait_until(lambda: answered(fake_server) >= 60, "60 answers")
    pids = replica_pids("replica-kill", "text_generation_0")
    assert len(pids) == 2
    os.kill(pids[0], signal.SIGKILL)
    thread.join(timeout=120)

    assert "error" not in outcome, outcome.get("error")
    assert_exactly_once_and_aligned(outcome["distiset"]["default"]["train"], ROWS)
    assert answered(fake_server) <= ROWS + RESENT_BOUND
    assert "a replica died" in caplog.text


def test_a_batch_that_kills_its_replica_every_time_fails_after_bounded_retries(
    ray_cluster: RayCluster, caplog: pytest.LogCaptureFixture
) -> None:
    with Pipeline(name="poison") as pipeline:
        load = LoadDataFromDicts(data=[{"x": i} for i in range(40)], batch_size=5)
        load >> CrashOn13(name="crash", input_batch_size=5)
    caplog.set_level(logging.WARNING, logger="potstill")

    started = time.monotonic()
    distiset = pipeline.ray().run(params={"crash": {"resources": {"replicas": 2}}}, use_cache=False)

    assert time.monotonic() - started < 90
    rows = distiset["default"]["train"].to_list()
    assert [row["x"] for row in rows] == list(range(40))
    for row in rows:
        error = (row["potstill_metadata"] or {}).get("error_crash")
        if 10 <= row["x"] < 15:  # the batch holding 13
            assert row["y"] is None
            assert f"died {MAX_BATCH_RETRIES + 1} times" in error
        else:
            assert row["y"] == 2 * row["x"] and error is None
    # the batch that shared its replica the first time ran again alone, and passed
    assert caplog.text.count("rows 10-14; they run again") == MAX_BATCH_RETRIES + 1


def test_a_lost_node_is_survived(
    ray_cluster: RayCluster, fake_server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    # 200 rows, 10 in flight, 0.1 s each: about 2 s of requests, so when the node goes after
    # 60 answers its replica still has batches in flight (with 0.03 s the run could end
    # before the node did).
    fake_server.configure(latency_s=0.1)
    pipeline, _ = generation_pipeline(
        fake_server, ROWS, name="node-loss", max_concurrent_requests=10
    )
    caplog.set_level(logging.WARNING, logger="potstill")
    thread, outcome = run_in_background(
        pipeline, {"text_generation_0": {"resources": {"replicas": 2}}}
    )
    wait_until(lambda: answered(fake_server) >= 60, "60 answers")
    ray_cluster.replace_gpu_node()  # the second node goes away (its replica with it)
    thread.join(timeout=150)

    assert "error" not in outcome, outcome.get("error")
    assert_exactly_once_and_aligned(outcome["distiset"]["default"]["train"], ROWS)
    assert "a replica died" in caplog.text
