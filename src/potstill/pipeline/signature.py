"""Step signatures: what decides whether stored batches can be reused."""

from __future__ import annotations

from typing import Any, Optional

from potstill.llms.base import LLM
from potstill.pipeline.dag import DAG
from potstill.steps.base import _Step
from potstill.utils.canonical_json import CANONICAL_FORMAT, canonical_sha256
from potstill.utils.fields import without_execution_fields
from potstill.utils.fingerprint import code_fingerprint

# Classes from these packages are versioned with them; only the user's own code is hashed.
_LIBRARY_MODULES = ("potstill", "pydantic", "builtins", "abc", "typing")


def step_signatures(dag: DAG, dumps: Optional[dict[str, dict[str, Any]]] = None) -> dict[str, str]:
    """A signature per step, hashing its config, its code and the signatures of its inputs.

    Changing a step's config, one of its runtime parameters, or the code of a step or LLM
    class defined outside potstill (a custom step, a `@step` function, a custom LLM) changes
    its signature and those of every step downstream of it; nothing upstream is affected.
    Settings of an LLM that change how it runs but not what it produces (limits, retries,
    timeouts, the response cache) are left out.

    Args:
        dag: the pipeline's steps.
        dumps: step name -> `step.dump()`, when the caller has made them already.

    Returns:
        Step name -> 16 hex characters.
    """
    signatures: dict[str, str] = {}
    for name in dag.topological_order():
        step = dag.steps[name]
        payload = {
            "step": signature_dump(step, (dumps or {}).get(name)),
            "code": user_code(step),
            "inputs": [signatures[p] for p in dag.predecessors(name)],
        }
        routing = dag.routing_batch_function(name)
        if routing is not None:  # where its batches went is part of what it produced
            payload["routing"] = routing.dump()
        signatures[name] = canonical_sha256([CANONICAL_FORMAT, payload]).hexdigest()[:16]
    return signatures


def signature_dump(step: _Step, dump: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """The step's dump without what does not change its output: the runtime-parameters
    descriptions, its resources, and the execution-only settings of its LLMs (at their own
    level only).

    Args:
        step: the step.
        dump: `step.dump()`, when the caller has made it already (it is not changed).
    """
    # The step's own execution-only fields (its `resources`: replicas on Ray) go too.
    dump = without_execution_fields(step.dump() if dump is None else dump, type(step))
    for field in type(step).model_fields:
        llm = getattr(step, field, None)
        if isinstance(llm, LLM) and isinstance(dump.get(field), dict):
            dump[field] = without_execution_fields(dump[field], type(llm))
    return dump


def user_code(step: _Step) -> list[str]:
    """Fingerprints of the user-defined classes of a step and of its LLMs."""
    components: list[Any] = [step]
    components += [
        value
        for field in type(step).model_fields
        if isinstance(value := getattr(step, field, None), LLM)
    ]
    return [
        f"{cls.__module__}.{cls.__qualname__}:{code_fingerprint(cls)}"
        for component in components
        for cls in type(component).__mro__
        if cls.__module__.partition(".")[0] not in _LIBRARY_MODULES
    ]
