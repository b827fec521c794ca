"""Checks run before any step is loaded, each naming the step, the field and the fix."""

from __future__ import annotations

import json
from typing import Any, Optional

from potstill.errors import PipelineValidationError, PotstillUserError
from potstill.llms.base import LLM
from potstill.mixins.runtime_parameters import ParameterPlace, RuntimeParametersMixin
from potstill.pipeline.dag import DAG
from potstill.steps.base import GeneratorStep, GlobalStep, _Step
from potstill.steps.tasks.base import METADATA_COLUMN, _Task
from potstill.utils.names import suggest


def apply_params(dag: DAG, params: dict[str, Any]) -> None:
    """Sets runtime parameters per step name.

    Args:
        dag: the pipeline's steps.
        params: step name -> that step's runtime parameters.

    Raises:
        PipelineValidationError: for an unknown step name (with close matches).
        PotstillUserError: for an unknown parameter or a wrong value.
    """
    if not isinstance(params, dict):
        raise PipelineValidationError(
            f"`params` must be a dict of step name -> parameters, got {type(params).__name__}."
        )
    for name, values in params.items():
        if name not in dag.steps:
            hint = _parameter_not_step(dag, str(name), values) or suggest(str(name), dag.steps)
            raise PipelineValidationError(
                f"Step {name!r} given in `run(params=...)` is not part of the pipeline. {hint}"
            )
        dag.steps[name].set_runtime_parameters(values)


def _parameter_not_step(dag: DAG, name: str, value: Any) -> Optional[str]:
    """When an unknown step name is a runtime parameter of a step (`params={"llm": ...}`),
    says that `params` is keyed by step name first, with the nesting to use."""
    for step_name, step in dag.steps.items():
        place = ParameterPlace(step, ("",))  # look at every level of the step
        found = place.find(name)
        if found is not None:
            example, command_line = place.example(found, value)
            container = ".".join(found[:-1])
            where = f"`{container}` in step {step_name!r}" if container else f"step {step_name!r}"
            return (
                f"{name!r} is not a step but a parameter of {where}, and `params` is keyed by "
                f"step name first: pass params={ {step_name: example}!r}{command_line}."
            )
    return None


def validate(dag: DAG) -> None:
    """Checks the whole pipeline and raises one error listing every problem found.

    Args:
        dag: the pipeline's steps.

    Raises:
        PipelineValidationError: when anything would stop the pipeline from running.
    """
    if not dag.steps:
        raise PipelineValidationError(
            "The pipeline has no steps: create steps inside `with Pipeline(...):`."
        )
    problems: list[str] = []
    for name in dag.topological_order():
        step = dag.steps[name]
        problems.extend(_check_position(dag, step))
        problems.extend(_check_routing(dag, step))
        problems.extend(_check_mappings(step))
        problems.extend(_check_inputs(dag, step))
        problems.extend(_check_required_parameters(step))
        problems.extend(step.problems_before_run())
    if problems:
        listed = "\n".join(f"  - {problem}" for problem in problems)
        raise PipelineValidationError(f"The pipeline cannot run:\n{listed}")


def _check_position(dag: DAG, step: _Step) -> list[str]:
    predecessors = dag.predecessors(step.name)  # type: ignore[arg-type]
    if isinstance(step, GeneratorStep):
        if predecessors:
            return [
                f"Step {step.name!r} is a generator step, so nothing can feed it, but "
                f"{predecessors} do. Remove those connections."
            ]
        return []
    if not predecessors:
        return [
            f"Step {step.name!r} has no input: it is not a generator step, so it must be fed "
            f"by one, e.g. `LoadDataFromDicts(data=[...]) >> {step.name}`."
        ]
    if len(predecessors) > 1 and not step.has_multiple_inputs():
        return [
            f"Step {step.name!r} receives batches from {len(predecessors)} steps "
            f"{predecessors}, so its `process` must take `*inputs: StepInput` (one list per "
            "predecessor)."
        ]
    return []


def _check_routing(dag: DAG, step: _Step) -> list[str]:
    name: str = step.name  # type: ignore[assignment]
    problems = []
    routing = dag.routing_batch_function(name)
    successors = dag.successors(name)
    if routing is not None:
        wanted = routing._max_steps
        if not successors:
            problems.append(
                f"Step {name!r} has a routing batch function but no successors: write "
                f"`{name} >> routing_function >> [step_a, step_b, ...]`."
            )
        elif wanted is not None and wanted > len(successors):
            problems.append(
                f"Step {name!r} routes each batch to {wanted} successors, but it has only "
                f"{len(successors)} ({successors})."
            )
    predecessors = dag.predecessors(name)
    routed = [p for p in predecessors if dag.routing_batch_function(p) is not None]
    if routed and len(predecessors) > 1:
        problems.append(
            f"Step {name!r} receives routed batches from {routed[0]!r}, so it cannot have "
            f"other predecessors ({[p for p in predecessors if p != routed[0]]}); join the "
            "routed steps in a step after them instead."
        )
    branches = [p for p in predecessors if dag.receives_routed_batches(p)]
    if branches and len(predecessors) > 1:
        sources = {p: dag.predecessors(p)[0] for p in branches if dag.predecessors(p)}
        if len(branches) != len(predecessors) or len(set(sources.values())) > 1:
            problems.append(
                f"Step {name!r} joins steps that receive routed batches ({branches}): all its "
                "predecessors must receive them from the same routing step "
                f"(found {sorted(set(predecessors) - set(branches)) or sources})."
            )
    if isinstance(step, GlobalStep) and (routed or (branches and len(predecessors) > 1)):
        problems.append(
            f"Step {name!r} is a global step, which cannot receive routed batches or join "
            "routed steps; put a normal step before it."
        )
    return problems


def _check_mappings(step: _Step) -> list[str]:
    problems = []
    for verify in (step.verify_inputs_mappings, step.verify_outputs_mappings):
        try:
            verify()
        except PotstillUserError as error:
            problems.append(str(error))
    return problems


def _check_inputs(dag: DAG, step: _Step) -> list[str]:
    if isinstance(step, GeneratorStep):
        return []
    available: set[str] = set()
    for ancestor in dag.ancestors(step.name):  # type: ignore[arg-type]
        upstream = dag.steps[ancestor]
        available.update(upstream.get_outputs())
        if isinstance(upstream, _Task):
            available.add(METADATA_COLUMN)
    problems = []
    for column, required in step.input_columns().items():
        if required and column not in available:
            problems.append(
                f"Step {step.name!r} needs input column {column!r}, which no step before it "
                f"produces (available: {sorted(available)}). {suggest(column, available)} "
                f"Map it with `input_mappings={{{column!r}: '<column>'}}` or add a step that "
                "produces it."
            )
    return problems


def _check_required_parameters(step: _Step) -> list[str]:
    missing = _missing(step, step.runtime_parameters_names, [])
    return [
        f"Step {step.name!r} is missing required runtime parameter {'.'.join(path)!r}. "
        f"Provide it with `pipeline.run(params={_example(step.name, path)})`."
        for path in missing
    ]


def _missing(obj: Any, names: dict[str, Any], path: list[str]) -> list[list[str]]:
    missing = []
    for name, optional in names.items():
        if isinstance(optional, dict):
            if name == "generation_kwargs" and isinstance(obj, LLM):
                given = obj.generation_kwargs or {}
                missing.extend(
                    [*path, name, key]
                    for key, key_optional in optional.items()
                    if not key_optional and key not in given
                )
                continue
            nested = getattr(obj, name, None)
            if isinstance(nested, RuntimeParametersMixin):
                missing.extend(_missing(nested, optional, [*path, name]))
            continue
        if not optional and getattr(obj, name, None) is None:
            missing.append([*path, name])
    return missing


def _example(step_name: Any, path: list[str]) -> str:
    value: Any = "..."
    for key in reversed(path):
        value = {key: value}
    return json.dumps({step_name: value}).replace('"..."', "...")
