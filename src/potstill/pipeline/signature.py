"""Step signatures: what decides whether stored batches can be reused."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from potstill.pipeline.dag import DAG

# Fields that change how a step runs but not what it produces.
EXECUTION_ONLY_FIELDS = frozenset(
    {
        "runtime_parameters_info",
        "max_concurrent_requests",
        "timeout",
        "max_retries",
        "max_retry_time",
        "retry_backoff",
        "requests_per_minute",
        "tokens_per_minute",
        "input_tokens_per_minute",
        "output_tokens_per_minute",
        "use_response_cache",
        "response_cache_dir",
    }
)


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
            "step": _without_execution_fields(dag.steps[name].dump()),
            "inputs": [signatures[p] for p in dag.predecessors(name)],
        }
        text = json.dumps(payload, sort_keys=True, default=str)
        signatures[name] = hashlib.sha256(text.encode()).hexdigest()[:16]
    return signatures


def _without_execution_fields(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: _without_execution_fields(item)
            for key, item in value.items()
            if key not in EXECUTION_ONLY_FIELDS
        }
    if isinstance(value, list):
        return [_without_execution_fields(item) for item in value]
    return value
