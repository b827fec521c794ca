"""Steps and LLMs the Ray tests run on the cluster's workers (importable there as
`tests.on_ray.steps`, like a user's own module)."""

from __future__ import annotations

import os
import time
from typing import Any

from potstill.llms.base import LLM
from potstill.llms.mixins.cuda_device_placement import CudaDevicePlacementMixin
from potstill.steps import GlobalStep, StepInput, step
from potstill.steps.typing import StepOutput


def where() -> str:
    """The id of the node this code runs on (`local` outside Ray)."""
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"


@step(inputs=["x"], outputs=["y"])
def Double(inputs: StepInput) -> StepOutput:
    """y = 2x."""
    yield [{**row, "y": row["x"] * 2} for row in inputs]


@step(inputs=["x"], outputs=["node", "pid"])
def WhereAmI(inputs: StepInput) -> StepOutput:
    """Notes the node and the process that processed each row."""
    node, pid = where(), os.getpid()
    time.sleep(0.01)
    yield [{**row, "node": node, "pid": pid} for row in inputs]


@step(inputs=["x"], outputs=["y"])
def CrashOn13(inputs: StepInput) -> StepOutput:
    """Kills its process on the row where x == 13 (a poison batch), doubles x otherwise."""
    if any(row["x"] == 13 for row in inputs):
        os._exit(1)
    time.sleep(0.02)
    yield [{**row, "y": row["x"] * 2} for row in inputs]


@step(inputs=["x"], outputs=["y"])
def FailOn7(inputs: StepInput) -> StepOutput:
    """Raises on the batch holding x == 7."""
    if any(row["x"] == 7 for row in inputs):
        raise ValueError("seven is not welcome")
    yield [{**row, "y": row["x"] * 2} for row in inputs]


class Total(GlobalStep):
    """Adds the sum of `y` over all rows to each row."""

    @property
    def inputs(self) -> list[str]:
        return ["y"]

    @property
    def outputs(self) -> list[str]:
        return ["total"]

    def process(self, inputs: StepInput) -> StepOutput:  # type: ignore[override]
        total = sum(row["y"] for row in inputs)
        yield [{**row, "total": total} for row in inputs]


class FakeGPULLM(LLM, CudaDevicePlacementMixin):
    """A local "GPU model" that generates where it runs: its node, its CUDA devices and,
    for `workers > 1` (like vLLM's tensor parallelism), where its worker tasks ran.

    Attributes:
        workers: GPUs (one per worker) the model spreads over.
    """

    workers: int = 1
    extra_kwargs: dict[str, Any] = {}

    @property
    def model_name(self) -> str:
        return "fake-gpu"

    @property
    def _desired_num_gpus(self) -> int:
        return self.workers

    def load(self) -> None:
        super().load()
        self._assign_cuda_devices()

    def generate(self, inputs: list[Any], num_generations: int = 1, **kwargs: Any) -> list[Any]:
        import json

        import ray

        report: dict[str, Any] = {
            "node": where(),
            "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "group": _placement_group(),
        }
        if self.workers > 1:  # vLLM starts its workers as Ray tasks: they stay in the group
            report["workers"] = ray.get([_gpu_worker.remote() for _ in range(self.workers)])
        return [[json.dumps(report)] * num_generations for _ in inputs]


def _placement_group() -> Any:
    """The id of the placement group this code runs in, if any."""
    import ray

    group = ray.util.get_current_placement_group()
    return group.id.hex() if group is not None else None


def _remote_worker() -> Any:
    import ray

    @ray.remote(num_cpus=0, num_gpus=1)  # as vLLM starts its GPU workers
    def gpu_worker() -> dict[str, Any]:
        return {
            "node": where(),
            "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "group": _placement_group(),
        }

    return gpu_worker


class _Lazy:
    """`_gpu_worker.remote()` without importing Ray when this module is imported."""

    def remote(self) -> Any:
        return _remote_worker().remote()


_gpu_worker = _Lazy()
