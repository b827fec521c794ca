"""Where the replicas of a step go on Ray and what each reserves, decided on made-up
clusters (no Ray, no GPU needed): one GPU per replica of a local GPU model, a placement group
on one node for a model-parallel vLLM, round-robin over the nodes that fit, a clear error when
none does. (`tests/on_ray/test_ray_gpus.py` checks the same on a cluster.)"""

from __future__ import annotations

import pytest
from tests.on_ray.steps import Double, Total

from potstill.errors import PotstillUserError
from potstill.llms import TransformersLLM, vLLM
from potstill.pipeline import Pipeline
from potstill.pipeline.ray.placement import MIN_CPUS, NodeInfo, plan_replicas
from potstill.steps.tasks import TextGeneration

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
        vLLM(model="m", extra_kwargs={"tensor_parallel_size": 1, "pipeline_parallel_size": 2})
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

    with pytest.raises(PotstillUserError, match=r"'greedy'.*GPU=8"):
        plan_replicas(greedy, [CPU_NODE, GPU_NODE])
