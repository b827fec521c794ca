"""Joining a Ray cluster for a run, and knowing when a script runs inside one.

`import potstill` never imports Ray: it is imported here, when a pipeline runs on it, and a
missing install is an `ImportError` naming the `potstill[ray]` extra.
"""

from __future__ import annotations

import logging
import os
from types import ModuleType
from typing import Any, Optional

from potstill.utils.imports import require

logger = logging.getLogger("potstill.pipeline")

RAY_EXTRA = "ray"
# What distilabel checks: set on the nodes of clusters made by Ray's cluster launcher (and
# managed platforms).
_CLUSTER_ENV = ("RAY_NODE_TYPE_NAME", "RAY_CLUSTER_NAME", "RAY_ADDRESS")
# Set by Ray for the driver of a job started with `ray job submit`.
_JOB_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"


def import_ray() -> ModuleType:
    """Ray, or an `ImportError` that says `pip install 'potstill[ray]'`."""
    return require("ray", RAY_EXTRA)


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


class RayConnection:
    """`ray.init` for the length of a run, unless Ray is initialized already.

    The run shuts Ray down at the end only when it initialized it, so a script (or a test)
    that called `ray.init` itself keeps its connection.

    Args:
        address: the cluster to join (`ray.init(address=...)`); `None` lets Ray decide (the
            job's cluster, `$RAY_ADDRESS`, or a new local instance).
        init_kwargs: more arguments for `ray.init`.
    """

    def __init__(self, address: Optional[str], init_kwargs: Optional[dict[str, Any]]) -> None:
        self.address = address
        self.init_kwargs = dict(init_kwargs or {})
        self._started = False

    def __enter__(self) -> RayConnection:
        ray = import_ray()
        if not ray.is_initialized():
            kwargs = {"log_to_driver": True, **self.init_kwargs}
            if self.address is not None:
                kwargs["address"] = self.address
            logger.info("Connecting to Ray (%s).", self.address or "local or $RAY_ADDRESS")
            ray.init(**kwargs)
            self._started = True
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._started:
            self._started = False
            import_ray().shutdown()
