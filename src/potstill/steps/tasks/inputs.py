"""Reading a task's input columns, with an error that names the column and the value."""

from __future__ import annotations

from potstill.errors import PotstillUserError
from potstill.steps.base import _Step
from potstill.typing import Row


def string_columns(step: _Step, row: Row, *columns: str) -> dict[str, str]:
    """The row's values of `columns`, which must be strings.

    Args:
        step: the step reading them (named in the error).
        row: the row.
        *columns: the column names.

    Returns:
        Column -> value.

    Raises:
        PotstillUserError: naming the first column that does not hold a string.
    """
    values = {}
    for column in columns:
        value = row.get(column)
        if not isinstance(value, str):
            raise PotstillUserError(
                f"{type(step).__name__} {step.name!r}: column `{column}` must be a string, got "
                f"{type(value).__name__} ({value!r:.80})."
            )
        values[column] = value
    return values
