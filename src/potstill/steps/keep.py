"""`KeepColumns`: keeps some columns, in the given order, and drops the rest."""

from __future__ import annotations

from pydantic import Field

from potstill.steps.base import Step
from potstill.steps.row_checks import require_columns
from potstill.steps.typing import StepColumns, StepInput, StepOutput


class KeepColumns(Step):
    """Keeps only `columns`, in that order (the order the saved or pushed dataset will have).

    Input columns: the `columns`. Output columns: the same `columns`.

    Attributes:
        columns: the columns to keep; every row must have them.
    """

    columns: list[str] = Field(..., min_length=1)

    @property
    def inputs(self) -> StepColumns:
        """The `columns`."""
        return self.columns

    @property
    def outputs(self) -> StepColumns:
        """The `columns`."""
        return self.columns

    def process(self, *inputs: StepInput) -> StepOutput:
        """Yields, for each input batch, its rows reduced to `columns`.

        Args:
            *inputs: one batch per predecessor.

        Yields:
            The reduced rows of each batch.
        """
        for rows in inputs:
            require_columns(self.name, rows, self.columns)
            yield [{column: row[column] for column in self.columns} for row in rows]
