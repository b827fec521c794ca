"""Checks on the rows a step receives, failing with errors that name the step, row and column."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from potstill.errors import PotstillUserError
from potstill.steps.context import current_row_offset
from potstill.typing import Row


def require_columns(step_name: Any, rows: Sequence[Row], columns: Iterable[str]) -> None:
    """Raises when a row lacks one of `columns`.

    Args:
        step_name: the step, for the message.
        rows: the batch.
        columns: the columns every row must have.

    Raises:
        PotstillUserError: naming the first row without them, what it lacks and what it has.
    """
    wanted = list(columns)
    for index, row in enumerate(rows):
        missing = [column for column in wanted if column not in row]
        if missing:
            raise PotstillUserError(
                f"Step {step_name!r}: row {current_row_offset() + index} has no column "
                f"{', '.join(repr(c) for c in missing)} (it has {sorted(row)}). Produce it in an "
                f"earlier step, or read it from another column with "
                f"`input_mappings={{{missing[0]!r}: '<column>'}}`."
            )


def require_list(step_name: Any, index: int, column: str, value: Any) -> list[Any]:
    """Returns `value` when it is a list (or tuple), else raises.

    Args:
        step_name: the step, for the message.
        index: the row's index in its batch.
        column: the column the value comes from.
        value: the value.

    Raises:
        PotstillUserError: naming the row, the column and the type found.
    """
    if isinstance(value, (list, tuple)):
        return list(value)
    raise PotstillUserError(
        f"Step {step_name!r}: column {column!r} of row {current_row_offset() + index} must hold a "
        f"list, got {type(value).__name__} {_short(value)}."
    )


def require_equal_lengths(step_name: Any, inputs: Sequence[Sequence[Row]]) -> None:
    """Raises when the batches of several predecessors do not have the same number of rows.

    Args:
        step_name: the step, for the message.
        inputs: one batch per predecessor.
    """
    lengths = [len(rows) for rows in inputs]
    if len(set(lengths)) > 1:
        raise PotstillUserError(
            f"Step {step_name!r} combines rows by position, but its inputs have {lengths} rows. "
            "Give it batches of the same length (the pipeline does so for connected steps)."
        )


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
