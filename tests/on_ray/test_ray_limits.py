"""An LLM's limits hold across all its replicas: requests per minute, 429 pauses, and
`max_concurrent_requests` (shared: split between the replicas)."""

from __future__ import annotations

from typing import Any

import pytest
from tests.fake_server import FakeServer
from tests.on_ray.conftest import RayCluster
from tests.reliability.helpers import make_llm

from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration

pytestmark = pytest.mark.ray


def generation(
    server: FakeServer, name: str, instructions: list[str], **llm_fields: Any
) -> Pipeline:
    with Pipeline(name=name) as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": text} for text in instructions])
        task = TextGeneration(
            name="generate", llm=make_llm(server, **llm_fields), input_batch_size=5
        )
        load >> task
    return pipeline


TWO_REPLICAS = {"generate": {"resources": {"replicas": 2}}}


def most_in_one_second(starts: list[float]) -> int:
    """The most request starts in any 1-second window."""
    starts = sorted(starts)
    most, first = 0, 0
    for last, start in enumerate(starts):
        while start - starts[first] >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


def test_requests_per_minute_hold_across_replicas(
    ray_cluster: RayCluster, fake_server: FakeServer
) -> None:
    fake_server.configure(latency_s=0.02)
    pipeline = generation(fake_server, "rpm", [f"q{i}" for i in range(40)], requests_per_minute=600)

    rows = pipeline.ray().run(params=TWO_REPLICAS, use_cache=False)["default"]["train"]

    assert rows["generation"] == [f"Echo: q{i}" for i in range(40)]
    starts = [request.start for request in fake_server.requests]
    assert len(starts) == 40
    # 600 per minute is 10 per second, for the two replicas together (a limiter per replica
    # lets 20 through). The starts are spaced exactly; at the server one more may show at the
    # window's edge, and one more that a replica sent on time but that arrived late.
    assert most_in_one_second(starts) <= 12
    assert max(starts) - min(starts) >= 3.5


def test_a_429_pauses_every_replica(ray_cluster: RayCluster, fake_server: FakeServer) -> None:
    fake_server.configure(latency_s=0.05)
    instructions = [f"q{i}" for i in range(40)]
    instructions[12] = "q12 [[fail_first=1 status=429 retry_after=1.5]]"
    pipeline = generation(fake_server, "cool-down", instructions, max_concurrent_requests=4)

    rows = pipeline.ray().run(params=TWO_REPLICAS, use_cache=False)["default"]["train"]

    assert all(generation is not None for generation in rows["generation"])
    refused = [request for request in fake_server.requests if request.status == 429]
    assert len(refused) == 1
    paused_from = refused[0].end + 0.2  # the other replica hears of it within milliseconds
    started_while_paused = [
        request
        for request in fake_server.requests
        if paused_from < request.start < refused[0].end + 1.3
    ]
    assert started_while_paused == []
    assert len(fake_server.requests) == 41


def test_max_concurrent_requests_is_shared_by_the_replicas(
    ray_cluster: RayCluster, fake_server: FakeServer
) -> None:
    fake_server.configure(latency_s=0.15)
    pipeline = generation(
        fake_server, "concurrency", [f"q{i}" for i in range(40)], max_concurrent_requests=4
    )

    pipeline.ray().run(params=TWO_REPLICAS, use_cache=False)

    # 2 per replica: the LLM's limit holds for the cluster
    assert 3 <= fake_server.state.peak_concurrency <= 4
