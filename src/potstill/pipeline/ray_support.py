"""What lets a pipeline leave its process: running on Ray, and pickling.

`Pipeline` inherits this. `pipeline.ray()` gives the pipeline on a Ray cluster (see
`potstill.pipeline.ray`, which imports Ray only when a run uses it), and `Pipeline.run`
goes there by itself inside a Ray job. The local engine accepts every step's `resources` and
says once per run that replicas apply on Ray.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any, Optional

from potstill.steps.resources import note_ray_only_resources

if TYPE_CHECKING:
    from potstill.pipeline.dag import DAG
    from potstill.pipeline.engine import Engine
    from potstill.pipeline.ray import RayPipeline

logger = logging.getLogger("potstill.pipeline")

# What distilabel checks: set on the nodes of clusters made by Ray's cluster launcher (and
# managed platforms).
_CLUSTER_ENV = ("RAY_NODE_TYPE_NAME", "RAY_CLUSTER_NAME", "RAY_ADDRESS")
# Set by Ray for the driver of a job started with `ray job submit`.
_JOB_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"


def script_executed_in_ray_cluster() -> bool:
    """Whether `Pipeline.run` should run on Ray by itself.

    True inside a job submitted with `ray job submit`, on a node of a cluster made by Ray's
    cluster launcher (distilabel's check: `RAY_NODE_TYPE_NAME`, `RAY_CLUSTER_NAME` and
    `RAY_ADDRESS` all set), or when `POTSTILL_ENGINE=ray`; `POTSTILL_ENGINE=local` keeps the
    local engine in all cases.
    """
    engine = os.environ.get("POTSTILL_ENGINE", "").strip().lower()
    if engine in ("local", "ray"):
        return engine == "ray"
    if os.environ.get(_JOB_ENV):
        return True
    return all(os.environ.get(name) for name in _CLUSTER_ENV)


class RaySupport:
    """The Ray entry points and the pickling of a `Pipeline`."""

    name: str
    dag: DAG
    #: Whether the run's LLM requests are made in this process, where their cost is added
    #: up (`max_cost`, `last_run_cost`); `RayPipeline`'s replicas make them elsewhere.
    spending_counted_here = True

    def ray(
        self,
        ray_head_node_url: Optional[str] = None,
        ray_init_kwargs: Optional[dict[str, Any]] = None,
    ) -> RayPipeline:
        """This pipeline on a Ray cluster: the same steps and the same result, each step on
        its replicas (see the guide "Scaling with Ray").

        Args:
            ray_head_node_url: the cluster to join, e.g. `"ray://head:10001"` or
                `"head:6379"`; `None` joins the cluster of a Ray job (or `$RAY_ADDRESS`),
                else starts Ray on this machine.
            ray_init_kwargs: more arguments for `ray.init` (e.g. `runtime_env`).

        Returns:
            A `RayPipeline` sharing this pipeline's steps: `pipeline.ray().run(...)`.

        Raises:
            ImportError: when Ray is not installed (`pip install 'potstill[ray]'`).
        """
        from potstill.pipeline.ray import RayPipeline

        return RayPipeline.from_pipeline(self, ray_head_node_url, ray_init_kwargs)  # type: ignore[arg-type]

    def _runs_on_ray_by_default(self) -> bool:
        """Whether `run` goes to Ray by itself: inside a Ray job, or `POTSTILL_ENGINE=ray`."""
        if not script_executed_in_ray_cluster():
            return False
        logger.info("Script running in a Ray cluster: pipeline %r runs on Ray.", self.name)
        return True

    def _prepare_engine(self, engine: Engine) -> None:
        """Called before the engine runs. The local engine runs every step once, in this
        process, and says so when a step asks for replicas (`RayPipeline` puts each step
        on its replicas here).

        Args:
            engine: the engine about to run.
        """
        note_ray_only_resources(self.dag.steps.values())

    def __getstate__(self) -> dict[str, Any]:
        """The pipeline, outside any `with` block (its steps pickle without runtime state)."""
        state = dict(self.__dict__)
        state["_tokens"] = []
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        for step in self.dag.steps.values():  # a pickled step leaves its pipeline behind
            step.pipeline = self
