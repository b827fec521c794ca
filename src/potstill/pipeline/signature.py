"""Step signatures: what decides whether stored batches can be reused."""

from __future__ import annotations

import hashlib
import json

from potstill.pipeline.dag import DAG
from potstill.utils.fields import without_execution_fields


def step_signatures(dag: DAG) -> dict[str, str]:
    """A signature per step, hashing its config and the signatures of its predecessors.

    Changing a step's config or runtime parameters changes its signature and those of every
    step downstream of it; nothing upstream is affected.

    Args:
        dag: the pipeline's steps.

    Returns:
        Step name -> 16 hex characters.
    """
    signatures: dict[str, str] = {}
    for name in dag.topological_order():
        payload = {
            "step": without_execution_fields(dag.steps[name].dump()),
            "inputs": [signatures[p] for p in dag.predecessors(name)],
        }
        routing = dag.routing_batch_function(name)
        if routing is not None:  # where its batches went is part of what it produced
            payload["routing"] = routing.dump()
        text = json.dumps(payload, sort_keys=True, default=str)
        signatures[name] = hashlib.sha256(text.encode()).hexdigest()[:16]
    return signatures
