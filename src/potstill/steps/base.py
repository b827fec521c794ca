"""Steps: the nodes of a pipeline.

A `Step` turns batches of rows into rows; a `GeneratorStep` produces the first rows; a
`GlobalStep` sees all its input at once. Steps created inside `with Pipeline(...):` join that
pipeline, get a name (`snake_case_N`) when none is given, and are connected with `>>`.
"""

from __future__ import annotations

import inspect
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable
from functools import cached_property
from typing import TYPE_CHECKING, Any, Optional, Union, overload

from pydantic import ConfigDict, Field, PositiveInt, PrivateAttr

from potstill.errors import PotstillUserError
from potstill.mixins.runtime_parameters import RuntimeParameter, RuntimeParametersMixin
from potstill.pipeline.context import current_pipeline
from potstill.pipeline.routing_batch_function import RoutingBatchFunction
from potstill.steps.resources import StepResources
from potstill.steps.typing import (
    STEP_INPUT,
    GeneratorStepOutput,
    StepColumns,
    StepInput,
    StepOutput,
)
from potstill.typing import Row
from potstill.utils.fields import ExecutionOnly
from potstill.utils.names import snake_case
from potstill.utils.pickling import portable_state, restore_state
from potstill.utils.serialization import _Serializable, dump_model

if TYPE_CHECKING:
    from potstill.pipeline.base import Pipeline

__all__ = ["GeneratorStep", "GlobalStep", "Step", "StepInput", "_Step"]


class _Step(RuntimeParametersMixin, _Serializable, ABC):
    """What every step has: a name, its pipeline, column mappings and connections.

    Attributes:
        name: unique within the pipeline; inferred as `snake_case_N` from the class name
            when not given.
        resources: the step's replicas and what each reserves on Ray (see `StepResources`);
            the local engine runs every step once.
        input_mappings: step input column -> dataset column it reads from.
        output_mappings: step output column -> dataset column it writes to.
    """

    model_config = ConfigDict(
        arbitrary_types_allowed=True,
        validate_default=True,
        validate_assignment=True,
        extra="forbid",
    )

    name: Optional[str] = Field(default=None, pattern=r"^[A-Za-z0-9_-]+$")
    resources: ExecutionOnly[StepResources] = Field(
        default_factory=StepResources,
        description="The replicas of the step and the resources each one reserves on Ray.",
    )
    pipeline: Any = Field(default=None, exclude=True, repr=False)
    input_mappings: dict[str, str] = Field(default_factory=dict)
    output_mappings: dict[str, str] = Field(default_factory=dict)

    _logger: Optional[logging.Logger] = PrivateAttr(default=None)

    def model_post_init(self, context: Any) -> None:
        super().model_post_init(context)
        pipeline = self.pipeline if self.pipeline is not None else current_pipeline()
        if self.name is None:
            taken = pipeline.dag.names if pipeline is not None else set()
            self.name = _infer_name(type(self).__name__, taken)
        # Mappings are checked when the pipeline validates (`verify_*_mappings`), not here:
        # `inputs`/`outputs` may depend on runtime parameters that are not set yet.
        if pipeline is None:
            self.logger.warning(
                "Step %r is not part of a pipeline: it was created outside `with "
                "Pipeline(...):` and without `pipeline=`. It works on its own (`load()`, then "
                "`process(...)`), but cannot be connected to other steps or run by a pipeline.",
                self.name,
            )
            return
        self.pipeline = pipeline
        pipeline._add_step(self)

    # -- columns -----------------------------------------------------------------------

    @property
    def inputs(self) -> StepColumns:
        """The columns `process` reads (a list, or name -> required)."""
        return []

    @property
    def outputs(self) -> StepColumns:
        """The columns `process` writes."""
        return []

    def input_columns(self) -> dict[str, bool]:
        """Input column (after `input_mappings`) -> whether it is required."""
        return {self.input_mappings.get(c, c): req for c, req in _columns(self.inputs).items()}

    def output_columns(self) -> list[str]:
        """Output columns after `output_mappings` (same as `get_outputs`)."""
        return self.get_outputs()

    def get_inputs(self) -> list[str]:
        """distilabel's name: the required and optional input columns after mappings."""
        return list(self.input_columns())

    def get_outputs(self) -> list[str]:
        """Output columns after `output_mappings`. (The pipeline calls this one: steps such as
        `GroupColumns` have a field named `output_columns`.)"""
        return [self.output_mappings.get(c, c) for c in _columns(self.outputs)]

    def verify_inputs_mappings(self) -> None:
        """Checks that every `input_mappings` key is one of the step's `inputs`.

        Raises:
            PotstillUserError: (a `ValueError`) naming the key and the valid columns.
        """
        self._verify_mappings(self.input_mappings, _columns(self.inputs), "inputs")

    def verify_outputs_mappings(self) -> None:
        """Checks that every `output_mappings` key is one of the step's `outputs`.

        Raises:
            PotstillUserError: (a `ValueError`) naming the key and the valid columns.
        """
        self._verify_mappings(self.output_mappings, _columns(self.outputs), "outputs")

    def _verify_mappings(
        self, mapping: dict[str, str], columns: dict[str, bool], label: str
    ) -> None:
        for key in mapping:
            if key not in columns:
                raise PotstillUserError(
                    f"Step {self.name!r}: `{label[:-1]}_mappings` key {key!r} is not one of "
                    f"its {label} {sorted(columns)}. Map one of those instead."
                )

    # -- pickling (a Ray worker receives its step pickled) -------------------------------

    def __getstate__(self) -> dict[str, Any]:
        """The step without its pipeline (the worker needs the step alone) and without
        runtime state (see `potstill.utils.pickling`)."""
        state = portable_state(self)
        state["__dict__"]["pipeline"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        restore_state(self, state)

    # -- kind ----------------------------------------------------------------------------

    @property
    def is_generator(self) -> bool:
        """Whether the step produces rows without input."""
        return isinstance(self, GeneratorStep)

    @property
    def is_global(self) -> bool:
        """Whether the step processes all its input at once."""
        return isinstance(self, GlobalStep)

    @property
    def is_normal(self) -> bool:
        """Whether the step processes batches as they come."""
        return not (self.is_generator or self.is_global)

    # -- connections ---------------------------------------------------------------------

    def connect(
        self, *steps: _Step, routing_batch_function: Optional[RoutingBatchFunction] = None
    ) -> None:
        """Sends this step's output to each of `steps` (same as `self >> [steps]`).

        Args:
            *steps: the successors.
            routing_batch_function: decides which successors get each batch (same as
                `self >> routing_batch_function >> [steps]`).
        """
        pipeline = self._require_pipeline()
        if routing_batch_function is not None:
            self._route_with(routing_batch_function)
        for step in steps:
            pipeline._add_edge(self, step)

    def _route_with(self, function: RoutingBatchFunction) -> None:
        self._require_pipeline().dag.set_routing_batch_function(self.name, function)  # type: ignore[arg-type]
        function._step = self

    @overload
    def __rshift__(self, other: list[_Step]) -> list[_Step]: ...

    @overload
    def __rshift__(self, other: _Step) -> _Step: ...

    @overload
    def __rshift__(self, other: RoutingBatchFunction) -> RoutingBatchFunction: ...

    def __rshift__(
        self, other: Union[_Step, list[_Step], RoutingBatchFunction]
    ) -> Union[_Step, list[_Step], RoutingBatchFunction]:
        """`a >> b` connects a to b and returns b; `a >> [b, c]` returns the list;
        `a >> routing_function >> [b, c]` routes each batch of a to some of b and c."""
        if isinstance(other, RoutingBatchFunction):
            self._route_with(other)
            return other
        if isinstance(other, list):
            self.connect(*other)
            return other
        if not isinstance(other, _Step):
            return NotImplemented
        self.connect(other)
        return other

    def __rrshift__(self, other: list[_Step]) -> _Step:
        """`[a, b] >> c` connects a and b to c and returns c."""
        if not isinstance(other, list) or not all(isinstance(s, _Step) for s in other):
            return NotImplemented
        for step in other:
            step.connect(self)
        return self

    def _require_pipeline(self) -> Pipeline:
        if self.pipeline is None:
            raise PotstillUserError(
                f"Step {self.name!r} is not part of a pipeline, so it cannot be connected. "
                "Create it inside `with Pipeline(...):` or pass `pipeline=...`."
            )
        return self.pipeline

    # -- lifecycle -----------------------------------------------------------------------

    def problems_before_run(self) -> list[str]:
        """Problems that would stop the step, found without running it.

        The pipeline checks them with everything else before any step is loaded (so before
        any request is paid for). Each names the step and says what to do.

        Returns:
            One message per problem (none by default).
        """
        return []

    def load(self) -> None:
        """Prepares the step before it processes data (e.g. loads its LLM)."""

    def unload(self) -> None:
        """Releases what `load` acquired."""

    @property
    def logger(self) -> logging.Logger:
        """The logger `potstill.step.<name>`."""
        if self._logger is None:
            self._logger = logging.getLogger(f"potstill.step.{self.name}")
        return self._logger

    # -- processing ----------------------------------------------------------------------

    @cached_property
    def process_parameters(self) -> list[inspect.Parameter]:
        """The parameters of `process` (without `self`)."""
        return list(inspect.signature(self.process).parameters.values())

    def has_multiple_inputs(self) -> bool:
        """Whether `process` takes `*inputs`, one list per predecessor."""
        return any(p.kind is p.VAR_POSITIONAL for p in self.process_parameters)

    def get_process_step_input(self) -> Optional[inspect.Parameter]:
        """The `process` parameter annotated `StepInput`, if any."""
        found = [p for p in self.process_parameters if _is_step_input(p.annotation)]
        if len(found) > 1:
            raise TypeError(f"Step {self.name!r}: `process` has more than one `StepInput`.")
        return found[0] if found else None

    def _apply_input_mappings(self, rows: list[Row]) -> list[Row]:
        if not self.input_mappings:
            return rows
        renamed = []
        for row in rows:
            row = dict(row)
            for step_column, data_column in self.input_mappings.items():
                if data_column in row:
                    row[step_column] = row.pop(data_column)
            renamed.append(row)
        return renamed

    def _apply_output_mappings(self, rows: list[Row]) -> list[Row]:
        if not (self.input_mappings or self.output_mappings):
            return rows
        mapped = []
        for row in rows:
            out = {}
            for key, value in row.items():
                out[self.output_mappings.get(key) or self.input_mappings.get(key) or key] = value
            mapped.append(out)
        return mapped

    # -- serialization -------------------------------------------------------------------

    def dump(self, **kwargs: Any) -> dict[str, Any]:
        """Dumps the step's config (secrets excluded) with its runtime-parameters info."""
        data = dump_model(self, **kwargs)
        data["runtime_parameters_info"] = self.get_runtime_parameters_info()
        return data

    @classmethod
    def _from_dump(cls, data: dict[str, Any], allowed_modules: tuple[str, ...]) -> Any:
        data = {k: v for k, v in data.items() if k != "runtime_parameters_info"}
        return super()._from_dump(data, allowed_modules)

    def _runtime_parameters_label(self) -> str:
        return f"step {self.name!r}"


class Step(_Step, ABC):
    """A step that processes batches of rows from its predecessors.

    `process` receives a batch (`inputs: StepInput`, or `*inputs: StepInput` with one list per
    predecessor) and yields lists of rows; every yield is kept.

    Attributes:
        input_batch_size: how many rows each call to `process` receives.
    """

    input_batch_size: RuntimeParameter[PositiveInt] = Field(
        default=50,
        description="The number of rows that will contain the batches processed by the step.",
    )

    @abstractmethod
    def process(self, *inputs: StepInput) -> StepOutput:
        """Processes a batch; yields lists of rows."""

    def process_applying_mappings(self, *inputs: list[Row]) -> StepOutput:
        """Calls `process` with input mappings applied and applies output mappings."""
        mapped = [self._apply_input_mappings(rows) for rows in inputs]
        for rows in self.process(*mapped):
            yield self._apply_output_mappings(rows)


class GeneratorStep(_Step, ABC):
    """A step that produces rows without input (the root of a pipeline).

    `process(offset)` yields `(rows, is_last_batch)`, skipping the first `offset` rows (so a
    resumed run continues where the last one stopped).

    Attributes:
        batch_size: how many rows each yield holds.
    """

    batch_size: RuntimeParameter[PositiveInt] = Field(
        default=50,
        description="The number of rows that will contain the batches generated by the step.",
    )

    @abstractmethod
    def process(self, offset: int = 0) -> GeneratorStepOutput:
        """Yields `(rows, is_last_batch)`, starting after `offset` rows."""

    def process_applying_mappings(self, offset: int = 0) -> GeneratorStepOutput:
        """Calls `process` and applies output mappings."""
        for rows, last in self.process(offset):
            yield self._apply_output_mappings(rows), last

    def total_rows(self) -> Optional[int]:
        """How many rows the step will produce, when known (for progress displays)."""
        return None


class GlobalStep(Step, ABC):
    """A step that receives all the rows of its predecessors in one call."""


def _infer_name(class_name: str, taken: Iterable[str]) -> str:
    base = snake_case(class_name)
    taken = set(taken)
    index = 0
    while f"{base}_{index}" in taken:
        index += 1
    return f"{base}_{index}"


def _columns(spec: StepColumns) -> dict[str, bool]:
    if isinstance(spec, dict):
        return dict(spec)
    return dict.fromkeys(spec, True)


def _is_step_input(annotation: Any) -> bool:
    if annotation is inspect.Parameter.empty:
        return False
    if isinstance(annotation, str):
        return "StepInput" in annotation
    return STEP_INPUT in getattr(annotation, "__metadata__", ())
