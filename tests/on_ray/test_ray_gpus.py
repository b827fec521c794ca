"""GPU placement on Ray, without a GPU: one GPU per replica of a local GPU model, and a
placement group that keeps a model-parallel model's workers on its replica's node.

On the test cluster, whose second node declares 2 GPUs (Ray hands them out; nothing uses
CUDA), a stand-in model reports where it ran. The plans themselves are checked on made-up
clusters in `tests/core/test_ray_placement.py`.
"""

from __future__ import annotations

import json

import pytest
from tests.on_ray.conftest import RayCluster
from tests.on_ray.steps import FakeGPULLM

from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration

pytestmark = pytest.mark.ray


def reports(distiset: object) -> list[dict]:
    rows = distiset["default"]["train"]  # type: ignore[index]
    return [json.loads(text) for text in rows["generation"]]


def test_on_the_cluster_each_replica_gets_its_own_gpu(ray_cluster: RayCluster) -> None:
    with Pipeline(name="gpus") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": f"q{i}"} for i in range(40)])
        load >> TextGeneration(name="generate", llm=FakeGPULLM(), input_batch_size=5)

    seen = reports(
        pipeline.ray().run(params={"generate": {"resources": {"replicas": 2}}}, use_cache=False)
    )

    assert {report["node"] for report in seen} == {ray_cluster.gpu_node}
    assert {report["group"] for report in seen} == {None}
    # one GPU each, made visible by Ray (the model's `cuda_devices="auto"` then takes
    # device 0 of what it sees; with no CUDA here it sees none)
    assert {report["cuda"] for report in seen} == {"0", "1"}


def test_on_the_cluster_a_model_parallel_model_keeps_its_workers_on_its_node(
    ray_cluster: RayCluster,
) -> None:
    with Pipeline(name="model-parallel") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": f"q{i}"} for i in range(4)])
        load >> TextGeneration(name="generate", llm=FakeGPULLM(workers=2))

    seen = reports(pipeline.ray().run(use_cache=False))

    for report in seen:
        assert report["node"] == ray_cluster.gpu_node
        assert report["group"] is not None
        workers = report["workers"]
        # inside the replica's placement group, so on its node, one GPU each
        assert [worker["group"] for worker in workers] == [report["group"]] * 2
        assert [worker["node"] for worker in workers] == [ray_cluster.gpu_node] * 2
        assert sorted(worker["cuda"] for worker in workers) == ["0", "1"]
