"""Running a pipeline on a Ray cluster (`Pipeline.ray()`, `RayPipeline`).

Importing this package does not import Ray; running on it does (`pip install
'potstill[ray]'`). The modules: `pipeline` (`RayPipeline`), `run` (one run: what runs where),
`pool` (a step's replicas), `replica` (one replica), `placement` (where replicas go, GPUs),
`limiter` (limits shared by replicas), `store_sink` (journals and the response cache on the
driver's machine), `connection` (joining the cluster).
"""

from potstill.pipeline.ray.pipeline import RayPipeline

__all__ = ["RayPipeline"]
