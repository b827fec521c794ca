"""`MergeColumns`: joins several columns of each row into one list column."""

from __future__ import annotations

from typing import Optional

from pydantic import Field

from potstill.steps.base import Step
from potstill.steps.row_checks import require_columns
from potstill.steps.typing import StepColumns, StepInput, StepOutput
from potstill.typing import Row


class MergeColumns(Step):
    """Replaces `columns` of each row with one list: their values in order, lists flattened.

    For example `{"queries": "How are you?", "multiple_queries": ["Hi?", "Ok?"]}` with
    `columns=["queries", "multiple_queries"]` becomes `{"merged_column": ["How are you?",
    "Hi?", "Ok?"]}`. (Unlike `GroupColumns`, which gathers one column across predecessors,
    this works within a row.)

    Input columns: the `columns`. Output columns: `output_column`.

    Attributes:
        columns: the columns to merge (they are removed from the row).
        output_column: the name of the merged column; `merged_column` when not given.
    """

    columns: list[str] = Field(..., min_length=1)
    output_column: Optional[str] = None

    @property
    def inputs(self) -> StepColumns:
        """The `columns`."""
        return self.columns

    @property
    def outputs(self) -> StepColumns:
        """`output_column`, or `merged_column`."""
        return [self.output_column or "merged_column"]

    def process(self, inputs: StepInput) -> StepOutput:
        """Yields the rows with `columns` merged into one list.

        Args:
            inputs: the batch.

        Yields:
            The merged rows.
        """
        require_columns(self.name, inputs, self.columns)
        yield [self._merge(row) for row in inputs]

    def _merge(self, row: Row) -> Row:
        merged = []
        for column in self.columns:
            value = row[column]
            merged.extend(value if isinstance(value, list) else [value])
        kept = {key: value for key, value in row.items() if key not in self.columns}
        return {**kept, self.outputs[0]: merged}  # type: ignore[index]
