"""`StepResources`: how many copies of a step run, and what each needs (on Ray).

Every step has a `resources` runtime parameter, as in distilabel 1.3+:

```python
pipeline.ray().run(params={"text_generation_0": {"resources": {"replicas": 4, "cpus": 1}}})
```

The Ray engine (`Pipeline.ray()`) runs each step that is not a generator on `replicas` Ray
actors, each reserving `cpus`, `gpus`, `memory` and custom `resources` (see the guide
"Scaling with Ray"). The local engine runs every step once, in its own process, and only
says (once per run) that replicas apply on Ray.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Dict, Optional

from pydantic import ConfigDict, Field, PositiveFloat, PositiveInt

from potstill.mixins.runtime_parameters import RuntimeParameter, RuntimeParametersMixin

__all__ = ["StepResources", "note_ray_only_resources"]

logger = logging.getLogger("potstill.pipeline")


class StepResources(RuntimeParametersMixin):
    """The replicas of a step and what each replica reserves on a Ray cluster.

    Attributes:
        replicas: how many copies of the step process batches at the same time.
        cpus: CPUs reserved by each replica (`None`: none reserved; the replicas are
            spread over the nodes).
        gpus: GPUs reserved by each replica (`None`: one per replica for a local GPU model
            when the cluster has GPUs, else none).
        memory: bytes of memory reserved by each replica.
        resources: custom Ray resources reserved by each replica, name -> amount.
    """

    model_config = ConfigDict(validate_assignment=True, extra="forbid")

    replicas: RuntimeParameter[PositiveInt] = Field(
        default=1, description="The number of replicas for the step."
    )
    cpus: Optional[RuntimeParameter[PositiveFloat]] = Field(
        default=None, description="The number of CPUs assigned to each step replica."
    )
    gpus: Optional[RuntimeParameter[PositiveInt]] = Field(
        default=None, description="The number of GPUs assigned to each step replica."
    )
    memory: Optional[RuntimeParameter[PositiveInt]] = Field(
        default=None, description="The memory in bytes required for each step replica."
    )
    resources: Optional[RuntimeParameter[Dict[str, PositiveFloat]]] = Field(
        default=None,
        description="A dictionary containing names of custom resources and the number of "
        "those resources required for each step replica.",
    )

    def is_default(self) -> bool:
        """Whether nothing was asked for (one replica, no reservation)."""
        return self.replicas == 1 and not any((self.cpus, self.gpus, self.memory, self.resources))


def note_ray_only_resources(steps: Iterable[Any]) -> None:
    """Says once, for a local run, which steps ask for replicas or resources (they apply
    on Ray only).

    Args:
        steps: the pipeline's steps.
    """
    asked = [
        f"{step.name} ({_describe(step.resources)})"
        for step in steps
        if isinstance(getattr(step, "resources", None), StepResources)
        and not step.resources.is_default()
    ]
    if asked:
        logger.info(
            "Step resources apply on Ray only (`pipeline.ray().run(...)`); the local engine "
            "runs each step once, in this process: %s.",
            ", ".join(asked),
        )


def _describe(resources: StepResources) -> str:
    return ", ".join(
        f"{name}={value}"
        for name, value in resources.model_dump().items()
        if value is not None and not (name == "replicas" and value == 1)
    )
