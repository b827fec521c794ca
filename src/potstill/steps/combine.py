"""`CombineColumns` and `GroupColumns`: gather a column's values from several predecessors.

Both put, for each row position, the values that the rows of every predecessor hold in each of
`columns` into one list column; the other columns are taken from the rows as they come (a
later predecessor's value wins). They differ only in the default output names:
`merged_<column>` for `CombineColumns` (distilabel 1.1's name), `grouped_<column>` for
`GroupColumns` (its name from distilabel 1.3 on).
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar, Optional

from pydantic import Field, model_validator

from potstill.errors import PotstillUserError
from potstill.steps.base import Step
from potstill.steps.row_checks import require_equal_lengths
from potstill.steps.tasks.base import METADATA_COLUMN
from potstill.steps.typing import StepColumns, StepInput, StepOutput
from potstill.typing import Row


class _ColumnsGatherer(Step):
    """What `CombineColumns` and `GroupColumns` share; each declares the fields `columns`
    and `output_columns` itself (distilabel's name `output_columns` hides the method
    `_Step.output_columns()`, so pydantic needs the field declared on the final class)."""

    default_prefix: ClassVar[str] = "merged_"

    @model_validator(mode="after")
    def _one_output_per_column(self) -> _ColumnsGatherer:
        outputs = self._output_names()
        if outputs is not None and len(outputs) != len(self._columns()):
            raise PotstillUserError(
                f"{type(self).__name__}: `output_columns` {outputs} must name one column for "
                f"each of `columns` {self._columns()} ({len(self._columns())})."
            )
        return self

    def _columns(self) -> list[str]:
        return getattr(self, "columns")  # noqa: B009 (declared by the subclasses)

    def _output_names(self) -> Optional[list[str]]:
        return getattr(self, "output_columns")  # noqa: B009

    @property
    def inputs(self) -> StepColumns:
        """The `columns`."""
        return self._columns()

    @property
    def outputs(self) -> StepColumns:
        """`output_columns`, or the prefixed `columns`."""
        outputs = self._output_names()
        if outputs is not None:
            return outputs
        return [f"{self.default_prefix}{column}" for column in self._columns()]

    def process(self, *inputs: StepInput) -> StepOutput:
        """Yields one row per position, with the `columns` of every input gathered.

        Args:
            *inputs: one batch per predecessor, all of the same length.

        Yields:
            The gathered rows. A row where no input has a column gets an empty list.
        """
        require_equal_lengths(self.name, inputs)
        targets = dict(zip(self._columns(), self.outputs))  # type: ignore[arg-type]
        yield [_gather(rows, targets) for rows in zip(*inputs)]


def _gather(rows: tuple[Row, ...], targets: dict[str, str]) -> Row:
    gathered: Row = {}
    metadata: dict[str, Any] = {}
    for row in rows:
        for key, value in row.items():
            if key in targets:
                gathered.setdefault(targets[key], []).append(value)
            elif key == METADATA_COLUMN and isinstance(value, dict):
                metadata.update(value)
            else:
                gathered[key] = value
    for target in targets.values():
        gathered.setdefault(target, [])
    if metadata:
        gathered[METADATA_COLUMN] = metadata
    return gathered


with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message='Field name "output_columns"', category=UserWarning)

    class CombineColumns(_ColumnsGatherer):
        """Gathers `columns` from several predecessors into lists named `merged_<column>`.

        Input columns: the `columns`. Output columns: `output_columns` (default
        `merged_<column>` for each column); the other columns pass through.

        Attributes:
            columns: the columns whose values are gathered into lists.
            output_columns: the names of the list columns, one per column in `columns`.
        """

        default_prefix: ClassVar[str] = "merged_"

        columns: list[str] = Field(..., min_length=1)
        output_columns: Optional[list[str]] = None

    class GroupColumns(_ColumnsGatherer):
        """Gathers `columns` from several predecessors into lists named `grouped_<column>`.

        distilabel's later name for `CombineColumns`, with `grouped_` as the default prefix.

        Attributes:
            columns: the columns whose values are gathered into lists.
            output_columns: the names of the list columns, one per column in `columns`.
        """

        default_prefix: ClassVar[str] = "grouped_"

        columns: list[str] = Field(..., min_length=1)
        output_columns: Optional[list[str]] = None
