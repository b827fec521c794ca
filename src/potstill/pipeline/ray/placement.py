"""Where the replicas of a step go on a Ray cluster, and what each reserves.

Plain decisions on plain data (the cluster's nodes and the step), so they are tested without
a cluster or a GPU; `pool.py` turns them into Ray actor options.

- A replica reserves the step's `resources`: `cpus`, `gpus`, `memory` and custom
  `resources`. Without `cpus`, it reserves a token `MIN_CPUS` (an LLM-bound step mostly
  waits; Ray places an actor that reserves nothing on whatever node it likes).
- A local GPU model (`TransformersLLM`, `vLLM`) gets one GPU per replica when the cluster has
  GPUs and `gpus` is not given; Ray then sets `CUDA_VISIBLE_DEVICES` for the replica, and the
  model's `cuda_devices="auto"` picks that GPU.
- A model that spreads over several GPUs (vLLM with `tensor_parallel_size` x
  `pipeline_parallel_size` > 1) gets a placement group: one bundle for the replica (its
  CPUs), one bundle of one GPU per model worker. `STRICT_PACK` keeps them all on one node
  (the replica's); with pipeline parallelism, `PACK` lets the stages span nodes when no node
  has enough GPUs. The replica captures the group, so the GPU workers it starts as Ray tasks
  or actors (vLLM's Ray executor) go into the group's bundles, on the replica's node, not
  onto the driver's ("Ray does not allocate any GPUs on the driver node").
- Replicas without a placement group are spread round-robin over the nodes that can hold
  them (soft affinity: Ray may place one elsewhere when its node is full or gone), each step
  starting on a different node.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from potstill.errors import PotstillUserError
from potstill.llms.base import LLM
from potstill.llms.mixins.cuda_device_placement import CudaDevicePlacementMixin
from potstill.steps.base import GlobalStep, _Step

MIN_CPUS = 0.01
"""The CPUs a replica reserves when its step's `resources.cpus` is not set."""


@dataclass(frozen=True)
class NodeInfo:
    """A node of the cluster.

    Attributes:
        node_id: Ray's id of the node.
        resources: its total resources (`CPU`, `GPU`, `memory`, custom ones).
    """

    node_id: str
    resources: dict[str, float]


@dataclass(frozen=True)
class ReplicaPlan:
    """How one replica is started.

    Attributes:
        options: the actor's `num_cpus`, `num_gpus`, `memory` and `resources`.
        node_id: the node it should go to (soft), or `None` inside a placement group.
        bundles: the placement group's bundles (bundle 0 holds the replica), or `None`.
        strategy: the placement group's strategy.
    """

    options: dict[str, Any]
    node_id: Optional[str] = None
    bundles: Optional[list[dict[str, float]]] = None
    strategy: Optional[str] = None
    notes: list[str] = field(default_factory=list)


def replica_count(step: _Step) -> int:
    """How many replicas the step runs on (a global step sees all its input: one)."""
    return 1 if isinstance(step, GlobalStep) else step.resources.replicas or 1


def step_llms(step: _Step) -> list[tuple[str, LLM]]:
    """The step's LLMs (a task's `llm`), with the fields holding them."""
    fields = ((name, getattr(step, name, None)) for name in type(step).model_fields)
    return [(name, value) for name, value in fields if isinstance(value, LLM)]


def gpu_model(step: _Step) -> Optional[CudaDevicePlacementMixin]:
    """The local GPU model the step holds (a task's `llm`), if any."""
    models = [llm for _, llm in step_llms(step) if isinstance(llm, CudaDevicePlacementMixin)]
    return models[0] if models else None


def plan_replicas(step: _Step, nodes: list[NodeInfo], first_node: int = 0) -> list[ReplicaPlan]:
    """Where each replica of `step` goes and what it reserves.

    Args:
        step: the step.
        nodes: the cluster's alive nodes.
        first_node: where the round-robin starts (steps start on different nodes).

    Returns:
        One plan per replica.

    Raises:
        PotstillUserError: when no node of the cluster can hold a replica (or the model's
            GPUs), naming the step and what it asks for.
    """
    resources = step.resources
    count = replica_count(step)
    model = gpu_model(step)
    workers = model._desired_num_gpus if model is not None else 1
    if model is not None and workers > 1:
        return [_model_parallel_plan(step, model, workers, nodes)] * count
    cluster_gpus = sum(node.resources.get("GPU", 0) for node in nodes)
    if resources.gpus is not None:
        gpus: float = resources.gpus
    else:
        gpus = 1 if model is not None and cluster_gpus > 0 else 0
    options: dict[str, Any] = {"num_cpus": resources.cpus or MIN_CPUS, "num_gpus": gpus}
    if resources.memory:
        options["memory"] = resources.memory
    if resources.resources:
        options["resources"] = dict(resources.resources)
    eligible = [node for node in nodes if _fits(node, _demand(options))]
    if not eligible:
        raise PotstillUserError(
            f"Step {step.name!r}: no node of the Ray cluster can hold a replica asking for "
            f"{_describe(_demand(options))} (the nodes have {_describe_nodes(nodes)}). Lower "
            "the step's `resources` or add a node that has them."
        )
    return [
        ReplicaPlan(options, node_id=eligible[(first_node + index) % len(eligible)].node_id)
        for index in range(count)
    ]


def _model_parallel_plan(
    step: _Step, model: CudaDevicePlacementMixin, workers: int, nodes: list[NodeInfo]
) -> ReplicaPlan:
    """The placement group of a model whose workers use one GPU each (vLLM, tp x pp)."""
    resources = step.resources
    extra = getattr(model, "extra_kwargs", None) or {}
    pipeline_parallel = int(extra.get("pipeline_parallel_size") or 1)
    cpus = resources.cpus or 1.0
    head: dict[str, float] = {"CPU": cpus}
    if resources.memory:
        head["memory"] = resources.memory
    head.update(resources.resources or {})
    strategy = "PACK" if pipeline_parallel > 1 else "STRICT_PACK"
    most = max((node.resources.get("GPU", 0) for node in nodes), default=0)
    total = sum(node.resources.get("GPU", 0) for node in nodes)
    if (strategy == "STRICT_PACK" and most < workers) or total < workers:
        raise PotstillUserError(
            f"Step {step.name!r}: its model runs on {workers} GPUs (tensor x pipeline "
            f"parallel size), {'on one node' if strategy == 'STRICT_PACK' else 'in all'}, "
            f"but the Ray cluster's nodes have {_describe_nodes(nodes)}. Add GPUs or lower "
            "`tensor_parallel_size`."
        )
    notes = []
    if resources.gpus is not None and resources.gpus != workers:
        notes.append(
            f"Step {step.name!r}: `resources.gpus={resources.gpus}` is replaced by the "
            f"{workers} GPUs its model's tensor x pipeline parallel size needs."
        )
    return ReplicaPlan(
        {"num_cpus": cpus, "num_gpus": 0},
        bundles=[head] + [{"GPU": 1.0}] * workers,
        strategy=strategy,
        notes=notes,
    )


def _demand(options: dict[str, Any]) -> dict[str, float]:
    demand = {"CPU": options["num_cpus"], "GPU": options["num_gpus"]}
    if "memory" in options:
        demand["memory"] = options["memory"]
    demand.update(options.get("resources") or {})
    return {name: amount for name, amount in demand.items() if amount}


def _fits(node: NodeInfo, demand: dict[str, float]) -> bool:
    return all(node.resources.get(name, 0) >= amount for name, amount in demand.items())


def _describe(demand: dict[str, float]) -> str:
    return ", ".join(f"{name}={amount:g}" for name, amount in demand.items()) or "nothing"


def _describe_nodes(nodes: list[NodeInfo]) -> str:
    shown = [
        "{"
        + _describe({k: v for k, v in n.resources.items() if k in ("CPU", "GPU", "memory")})
        + "}"
        for n in nodes
    ]
    return ", ".join(shown) or "no node"
