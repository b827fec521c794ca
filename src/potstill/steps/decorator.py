"""The `@step` decorator: turns a function into a step class.

```python
@step(inputs=["instruction"], outputs=["length"])
def InstructionLength(inputs: StepInput, factor: RuntimeParameter[int] = 1) -> StepOutput:
    for row in inputs:
        row["length"] = len(row["instruction"]) * factor
    yield inputs
```

Arguments of the function annotated `RuntimeParameter[...]` become fields of the step (and
so runtime parameters); the others receive the batch (`StepInput`) or, for generator steps,
the `offset`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Literal, Optional, get_type_hints

from potstill.mixins.runtime_parameters import RUNTIME_PARAMETER
from potstill.steps.base import GeneratorStep, GlobalStep, Step, _Step
from potstill.steps.typing import STEP_INPUT, StepColumns, StepInput

StepType = Literal["normal", "global", "generator"]

_BASES: dict[str, type[_Step]] = {"normal": Step, "global": GlobalStep, "generator": GeneratorStep}


def step(
    inputs: Optional[StepColumns] = None,
    outputs: Optional[StepColumns] = None,
    step_type: StepType = "normal",
) -> Callable[[Callable[..., Any]], type[_Step]]:
    """Makes a step class out of a function.

    Args:
        inputs: the columns the step reads.
        outputs: the columns the step writes.
        step_type: `"normal"`, `"global"` or `"generator"`.

    Returns:
        A decorator that returns the new step class (named after the function).
    """
    if step_type not in _BASES:
        raise ValueError(
            f"Invalid step type {step_type!r} for @step: use 'normal', 'global' or 'generator'."
        )
    base = _BASES[step_type]

    def decorator(func: Callable[..., Any]) -> type[_Step]:
        hints = get_type_hints(func, include_extras=True)
        signature = inspect.signature(func)
        step_inputs = [
            name
            for name in signature.parameters
            if STEP_INPUT in getattr(hints.get(name), "__metadata__", ())
        ]
        if len(step_inputs) > 1:
            raise ValueError(
                f"Function {func.__name__!r} decorated with @step has more than one parameter "
                f"annotated with `StepInput` ({', '.join(step_inputs)}): keep one, or take "
                "`*inputs: StepInput` for one list per predecessor."
            )
        runtime_names = [
            name
            for name in signature.parameters
            if RUNTIME_PARAMETER in getattr(hints.get(name), "__metadata__", ())
        ]
        annotations = {name: hints[name] for name in runtime_names}
        defaults = {
            name: signature.parameters[name].default
            for name in runtime_names
            if signature.parameters[name].default is not inspect.Parameter.empty
        }
        takes_offset = "offset" in signature.parameters
        declared_inputs = inputs or []
        declared_outputs = outputs or []

        def runtime_values(self: _Step) -> dict[str, Any]:
            return {name: getattr(self, name) for name in runtime_names}

        if step_type == "generator":

            def process(self: GeneratorStep, offset: int = 0) -> Any:
                extra = {"offset": offset} if takes_offset else {}
                yield from func(**extra, **runtime_values(self))

        elif any(p.kind is p.VAR_POSITIONAL for p in signature.parameters.values()):

            def process(self: Step, *inputs: StepInput) -> Any:  # type: ignore[misc]
                yield from func(*inputs, **runtime_values(self))

        else:

            def process(self: Step, inputs: StepInput) -> Any:  # type: ignore[misc]
                yield from func(inputs, **runtime_values(self))

        process.__doc__ = func.__doc__
        namespace: dict[str, Any] = {
            "__module__": func.__module__,
            "__qualname__": func.__qualname__,
            "__doc__": func.__doc__,
            "__annotations__": annotations,
            "process": process,
            "inputs": property(lambda self: declared_inputs),
            "outputs": property(lambda self: declared_outputs),
            **defaults,
        }
        return type(func.__name__, (base,), namespace)

    return decorator
