"""Per-batch context that the engine gives to a step's `process` call."""

from __future__ import annotations

import contextvars

_row_offset: contextvars.ContextVar[int] = contextvars.ContextVar("potstill_row_offset", default=0)


def current_row_offset() -> int:
    """Index, in the step's input stream, of the first row of the batch being processed."""
    return _row_offset.get()


def set_row_offset(offset: int) -> contextvars.Token[int]:
    """Sets the row offset for the current context (the engine does this per batch)."""
    return _row_offset.set(offset)


def reset_row_offset(token: contextvars.Token[int]) -> None:
    """Restores the row offset that was set before `set_row_offset`."""
    _row_offset.reset(token)
