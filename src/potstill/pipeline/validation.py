"""Checks run before any step is loaded, each naming the step, the field and the fix."""

from __future__ import annotations

import json
from typing import Any

from potstill.errors import PipelineValidationError
from potstill.llms.base import LLM
from potstill.mixins.runtime_parameters import RuntimeParametersMixin
from potstill.pipeline.dag import DAG
from potstill.steps.base import GeneratorStep, _Step
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
            raise PipelineValidationError(
                f"Step {name!r} given in `run(params=...)` is not part of the pipeline. "
                f"{suggest(str(name), dag.steps)}"
            )
        dag.steps[name].set_runtime_parameters(values)


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


def _check_inputs(dag: DAG, step: _Step) -> list[str]:
    if isinstance(step, GeneratorStep):
        return []
    available: set[str] = set()
    for ancestor in dag.ancestors(step.name):  # type: ignore[arg-type]
        upstream = dag.steps[ancestor]
        available.update(upstream.output_columns())
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
