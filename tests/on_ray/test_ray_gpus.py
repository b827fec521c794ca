"""GPU placement on Ray, without a GPU: one GPU per replica of a local GPU model, and a
placement group that keeps a model-parallel model's workers on its replica's node.

The plans are checked on made-up clusters; on the test cluster, whose second node declares 2
GPUs (Ray hands them out; nothing uses CUDA), a stand-in model reports where it ran.
"""

from __future__ import annotations

import json

import pytest
from tests.on_ray.conftest import RayCluster
from tests.on_ray.steps import FakeGPULLM

from potstill.errors import PotstillUserError
from potstill.llms import TransformersLLM, vLLM
from potstill.pipeline import Pipeline
from potstill.pipeline.ray.placement import MIN_CPUS, NodeInfo, plan_replicas
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration
from tests.on_ray.steps import Double, Total

CPU_NODE = NodeInfo("cpu", {"CPU": 8.0, "memory": 32e9})
GPU_NODE = NodeInfo("gpu", {"CPU": 8.0, "GPU": 4.0, "memory": 64e9, "big": 1.0})
SMALL_GPU_NODE = NodeInfo("gpu1", {"CPU": 8.0, "GPU": 1.0})


def task(llm: object, **resources: object) -> TextGeneration:
    with Pipeline(name="plans"):
        return TextGeneration(llm=llm, resources=resources)


def test_plain_replicas_are_spread_round_robin_and_reserve_what_they_ask() -> None:
    with Pipeline(name="plans"):
        double = Double(resources={"replicas": 3})
        sized = Double(resources={"cpus": 2, "memory": 10**9, "resources": {"big": 1}})

    plans = plan_replicas(double, [CPU_NODE, GPU_NODE], first_node=1)
    assert [plan.node_id for plan in plans] == ["gpu", "cpu", "gpu"]
    assert plans[0].options == {"num_cpus": MIN_CPUS, "num_gpus": 0}
    assert plans[0].bundles is None

    (plan,) = plan_replicas(sized, [CPU_NODE, GPU_NODE])
    assert plan.options == {
        "num_cpus": 2,
        "num_gpus": 0,
        "memory": 10**9,
        "resources": {"big": 1},
    }
    assert plan.node_id == "gpu"  # the only node with the custom resource


def test_a_global_step_runs_on_one_replica() -> None:
    with Pipeline(name="plans"):
        total = Total(resources={"replicas": 4})

    assert len(plan_replicas(total, [CPU_NODE])) == 1


def test_a_local_gpu_model_gets_one_gpu_per_replica_where_there_are_gpus() -> None:
    model = task(TransformersLLM(model="tiny"), replicas=2)

    plans = plan_replicas(model, [CPU_NODE, GPU_NODE])
    assert [plan.options["num_gpus"] for plan in plans] == [1, 1]
    assert [plan.node_id for plan in plans] == ["gpu", "gpu"]
    # without GPUs in the cluster, it runs on CPUs
    assert plan_replicas(model, [CPU_NODE])[0].options["num_gpus"] == 0
    # `gpus` given explicitly wins
    two = task(TransformersLLM(model="tiny"), gpus=2)
    assert plan_replicas(two, [GPU_NODE])[0].options["num_gpus"] == 2


def test_tensor_parallel_vllm_gets_a_placement_group_on_one_node() -> None:
    model = task(vLLM(model="m", extra_kwargs={"tensor_parallel_size": 2}), replicas=2)

    plans = plan_replicas(model, [CPU_NODE, GPU_NODE])
    assert len(plans) == 2
    for plan in plans:
        assert plan.bundles == [{"CPU": 1.0}, {"GPU": 1.0}, {"GPU": 1.0}]
        assert plan.strategy == "STRICT_PACK"
        assert plan.options == {"num_cpus": 1.0, "num_gpus": 0}
        assert plan.node_id is None


def test_pipeline_parallel_vllm_may_span_nodes_but_not_exceed_the_cluster() -> None:
    model = task(
        vLLM(
            model="m", extra_kwargs={"tensor_parallel_size": 1, "pipeline_parallel_size": 2}
        )
    )

    (plan,) = plan_replicas(model, [SMALL_GPU_NODE, NodeInfo("other", {"GPU": 1.0})])
    assert plan.strategy == "PACK"
    assert plan.bundles == [{"CPU": 1.0}, {"GPU": 1.0}, {"GPU": 1.0}]
    with pytest.raises(PotstillUserError, match="2 GPUs"):
        plan_replicas(model, [SMALL_GPU_NODE])
    tensor = task(vLLM(model="m", extra_kwargs={"tensor_parallel_size": 2}))
    with pytest.raises(PotstillUserError, match="on one node"):  # 1 + 1 GPUs, split
        plan_replicas(tensor, [SMALL_GPU_NODE, NodeInfo("other", {"GPU": 1.0})])


def test_a_replica_no_node_can_hold_is_refused_naming_the_step() -> None:
    with Pipeline(name="plans"):
        greedy = Double(name="greedy", resources={"gpus": 8})

    with pytest.raises(PotstillUserError, match="'greedy'.*GPU=8"):
        plan_replicas(greedy, [CPU_NODE, GPU_NODE])


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
