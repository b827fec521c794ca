"""Joining a Ray cluster for a run, and knowing when a script runs inside one.

`import potstill` never imports Ray: it is imported here, when a pipeline runs on it, and a
missing install is an `ImportError` naming the `potstill[ray]` extra.
"""

from __future__ import annotations

import logging
from types import ModuleType
from typing import Any, Optional

from potstill.pipeline.ray_support import script_executed_in_ray_cluster
from potstill.utils.imports import require

logger = logging.getLogger("potstill.pipeline")

__all__ = ["RayConnection", "import_ray", "script_executed_in_ray_cluster"]

RAY_EXTRA = "ray"


def import_ray() -> ModuleType:
    """Ray, or an `ImportError` that says `pip install 'potstill[ray]'`."""
    return require("ray", RAY_EXTRA)


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
