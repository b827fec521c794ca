"""`RayPipeline`: a pipeline that runs its steps on a Ray cluster.

distilabel's spelling works as it is: `pipeline.ray(ray_head_node_url=None,
ray_init_kwargs=None).run(params=...)`, or `RayPipeline(...)` used like `Pipeline`. The
result is the same `Distiset`, row for row, as the local engine's; see `run.py` for what runs
where, and the guide "Scaling with Ray".
"""

from __future__ import annotations

import asyncio
from typing import Any, Optional

from potstill.distiset import Distiset
from potstill.errors import PotstillUserError
from potstill.pipeline.base import Pipeline
from potstill.pipeline.dag import DAG
from potstill.pipeline.engine import Engine
from potstill.pipeline.ray.connection import RayConnection, import_ray
from potstill.pipeline.ray.run import RayRun
from potstill.pipeline.run_folder import RunFolder
from potstill.pipeline.spend import checked_max_cost, refuse_limits_on_ray
from potstill.pipeline.step_batches import StepBatches
from potstill.utils.serialization import TYPE_INFO_KEY


class RayPipeline(Pipeline):
    """A pipeline whose steps run on a Ray cluster, each on its replicas.

    ```python
    with RayPipeline(name="gen", ray_head_node_url="ray://head:10001") as pipeline:
        ...
    distiset = pipeline.run(params={"text_generation_0": {"resources": {"replicas": 4}}})
    ```

    Args:
        *args: `Pipeline`'s arguments (`name`, `description`, `cache_dir`: on the driver's
            machine, no shared filesystem needed, ...).
        ray_head_node_url: the cluster to join; `None` joins the cluster of a Ray job (or
            `$RAY_ADDRESS`), else starts Ray on this machine.
        ray_init_kwargs: more arguments for `ray.init` (e.g. `runtime_env`).
        **kwargs: `Pipeline`'s keyword arguments.

    Raises:
        ImportError: when Ray is not installed (`pip install 'potstill[ray]'`).
    """

    spending_counted_here = False  # see `RaySupport`: no `max_cost` or cost table on Ray yet

    def __init__(
        self,
        *args: Any,
        ray_head_node_url: Optional[str] = None,
        ray_init_kwargs: Optional[dict[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        import_ray()
        super().__init__(*args, **kwargs)
        self.ray_head_node_url = ray_head_node_url
        self.ray_init_kwargs = dict(ray_init_kwargs or {})
        self._ray_run: Optional[RayRun] = None

    @classmethod
    def from_pipeline(
        cls,
        pipeline: Pipeline,
        ray_head_node_url: Optional[str] = None,
        ray_init_kwargs: Optional[dict[str, Any]] = None,
    ) -> RayPipeline:
        """A `RayPipeline` with the settings and the steps of `pipeline` (`Pipeline.ray`)."""
        ray_pipeline = cls(
            name=pipeline.name,
            description=pipeline.description,
            cache_dir=pipeline._cache_dir,
            enable_metadata=pipeline.enable_metadata,
            show_progress=pipeline.show_progress,
            use_response_cache=pipeline.use_response_cache,
            ray_head_node_url=ray_head_node_url,
            ray_init_kwargs=ray_init_kwargs,
        )
        ray_pipeline.dag = pipeline.dag
        return ray_pipeline

    def ray(
        self,
        ray_head_node_url: Optional[str] = None,
        ray_init_kwargs: Optional[dict[str, Any]] = None,
    ) -> RayPipeline:
        """This pipeline, with the given cluster settings when any are given."""
        if ray_head_node_url is not None:
            self.ray_head_node_url = ray_head_node_url
        if ray_init_kwargs is not None:
            self.ray_init_kwargs = dict(ray_init_kwargs)
        return self

    def _runs_on_ray_by_default(self) -> bool:
        return False

    def _connection(self) -> RayConnection:
        return RayConnection(self.ray_head_node_url, self.ray_init_kwargs)

    def run(self, *args: Any, **kwargs: Any) -> Distiset:
        """Runs the pipeline on Ray; the arguments are `Pipeline.run`'s. Ray is initialized
        for the run (in this thread), unless it is already."""
        # What Ray cannot run yet is refused before Ray starts (runtime parameters are
        # checked again once applied: see `RunSpending` and `_prepare_engine`).
        max_cost = checked_max_cost(kwargs.get("max_cost")) or checked_max_cost(self.max_cost)
        refuse_limits_on_ray(self.dag, max_cost)
        refuse_batch_jobs(self.dag)
        with self._connection():
            return super().run(*args, **kwargs)

    def _prepare_engine(self, engine: Engine) -> None:
        refuse_batch_jobs(self.dag)
        self._ray_run = RayRun(engine, self.name, self.use_response_cache)

    async def _execute(
        self,
        folder: RunFolder,
        steps: dict[str, StepBatches],
        show_progress: Optional[bool],
        max_generator_batches: Optional[int],
    ) -> None:
        # Already connected by `run`; `arun` connects here.
        connection = self._connection()
        await asyncio.to_thread(connection.__enter__)
        try:
            await super()._execute(folder, steps, show_progress, max_generator_batches)
        finally:
            try:
                if self._ray_run is not None:
                    run, self._ray_run = self._ray_run, None
                    await run.close()
            finally:
                await asyncio.to_thread(connection.__exit__, None, None, None)

    def dump(self, **kwargs: Any) -> dict[str, Any]:
        """As `Pipeline.dump`, typed `Pipeline`: a saved pipeline loads as a local one (run
        it on Ray with `.ray()` or `potstill pipeline run --ray`)."""
        data = super().dump(**kwargs)
        data["pipeline"][TYPE_INFO_KEY] = Pipeline.type_info()
        return data

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_ray_run"] = None
        return state

    def __repr__(self) -> str:
        return f"RayPipeline(name={self.name!r}, steps={list(self.dag.steps)})"


def refuse_batch_jobs(dag: DAG) -> None:
    """Refuses steps that send provider batch jobs (`use_offline_batch_generation=True`): a
    replica would not record its jobs in the run folder, so a rerun could not re-attach.

    Args:
        dag: the pipeline's steps.

    Raises:
        PotstillUserError: naming the steps.
    """
    jobs = [
        name
        for name, step in dag.steps.items()
        if getattr(getattr(step, "llm", None), "use_offline_batch_generation", False)
    ]
    if jobs:
        raise PotstillUserError(
            f"Step(s) {', '.join(map(repr, jobs))} use provider batch jobs "
            "(use_offline_batch_generation=True), which do not run on Ray yet. Run the "
            "pipeline without .ray() / --ray: one process sends the jobs and waits for them."
        )
