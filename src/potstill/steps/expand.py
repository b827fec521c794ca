"""`ExpandColumns`: turns list columns into one row per element."""

from __future__ import annotations

from typing import Union

from pydantic import Field, field_validator

from potstill.errors import PotstillUserError
from potstill.steps.base import Step
from potstill.steps.context import current_row_offset
from potstill.steps.row_checks import require_columns, require_list
from potstill.steps.typing import StepColumns, StepInput, StepOutput
from potstill.typing import Row


class ExpandColumns(Step):
    """Gives each element of a list column its own row (the other columns are copied).

    Several columns expand together: the n-th row gets the n-th element of each, so their
    lists must have the same length. A row whose lists are empty yields no row; a `None`
    (a failed generation) stays as one row with `None`.

    Input columns: the keys of `columns`. Output columns: its values.

    Attributes:
        columns: the columns to expand, as a list, or as a dict of column -> the column the
            elements go to (the same name when the value is empty).
    """

    columns: Union[dict[str, str], list[str]] = Field(..., min_length=1)

    @field_validator("columns")
    @classmethod
    def _as_dict(cls, value: Union[dict[str, str], list[str]]) -> dict[str, str]:
        if isinstance(value, list):
            return {column: column for column in value}
        return {column: target or column for column, target in value.items()}

    @property
    def inputs(self) -> StepColumns:
        """The columns to expand."""
        return list(self.columns)

    @property
    def outputs(self) -> StepColumns:
        """The columns the elements go to."""
        return list(self.columns.values())  # type: ignore[union-attr]

    def process(self, inputs: StepInput) -> StepOutput:
        """Yields the expanded rows.

        Args:
            inputs: the batch.

        Yields:
            One row per list element, in order.
        """
        require_columns(self.name, inputs, self.columns)
        yield [
            expanded for index, row in enumerate(inputs) for expanded in self._expand(index, row)
        ]

    def _expand(self, index: int, row: Row) -> list[Row]:
        targets: dict[str, str] = self.columns  # type: ignore[assignment]
        if all(row[column] is None for column in targets):
            return [{**row, **{target: None for target in targets.values()}}]
        values = {column: require_list(self.name, index, column, row[column]) for column in targets}
        lengths = {column: len(items) for column, items in values.items()}
        if len(set(lengths.values())) > 1:
            raise PotstillUserError(
                f"Step {self.name!r}: row {current_row_offset() + index} has lists of different "
                f"lengths to expand together: {lengths}. Expand them in separate steps, or make "
                "them the same length."
            )
        base = {key: value for key, value in row.items() if key not in targets}
        count = next(iter(lengths.values()))
        return [
            {**base, **{targets[column]: values[column][n] for column in targets}}
            for n in range(count)
        ]
