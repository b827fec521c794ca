"""Progress inside a batch: LLMs report finished inputs while the batch is still running.

A pipeline step gets its rows in batches (`input_batch_size`, 50 by default), and a batch
counts as done only when all of it is. With a local model a batch can take minutes, so the
engine gives each batch a `BatchProgress` through a context variable and the LLM base classes
report to it as inputs finish: an `AsyncLLM` after each request, a synchronous `LLM` after
each `generate` call, and an LLM whose `generate` loops over its inputs (llama.cpp) after
each input, through `report_progress`. The progress display then moves during the batch.

What is reported here is only ever shown, never counted: when the batch's rows are passed on,
the display is set to the rows it actually produced, so partial progress cannot be counted
twice (a retried call takes back what it had reported; a batch read back from the store of an
earlier run has no tracker at all). Outside a pipeline run there is no tracker, and reporting
costs one context-variable lookup.
"""

from __future__ import annotations

import contextvars
import threading
import time
from typing import Callable, Optional

# Updates of the display are at most this frequent per batch: an LLM that answers at once
# must not pay for redrawing after every request.
_MIN_INTERVAL_S = 0.1

_current: contextvars.ContextVar[Optional[BatchProgress]] = contextvars.ContextVar(
    "potstill_batch_progress", default=None
)


class BatchProgress:
    """How many inputs of one batch are done, shown as output rows through a callback.

    Args:
        inputs: the batch's input rows.
        rows_per_input: the output rows each input row becomes (a task's generations).
        on_rows: called with the change in rows to show (from whichever thread reports).
    """

    __slots__ = ("_done", "_inputs", "_last", "_lock", "_on_rows", "_rows_per_input", "_shown")

    def __init__(self, inputs: int, rows_per_input: int, on_rows: Callable[[int], None]) -> None:
        self._inputs = inputs
        self._rows_per_input = rows_per_input
        self._on_rows: Optional[Callable[[int], None]] = on_rows
        self._done = 0.0
        self._shown = 0
        self._last = time.monotonic()
        self._lock = threading.Lock()

    @property
    def done(self) -> float:
        """Inputs reported done so far (a fraction while some generations are pending)."""
        return self._done

    def add(self, inputs: float) -> None:
        """Counts `inputs` more inputs as done.

        Args:
            inputs: how many (e.g. `1 / num_generations` for one of several generations).
        """
        with self._lock:
            self._done += inputs
            self._show(force=False)

    def settle(self, done: float) -> None:
        """Sets the inputs done, e.g. back to where a call that failed and is retried began.

        Args:
            done: the inputs done.
        """
        with self._lock:
            self._done = done
            self._show(force=True)

    def close(self) -> int:
        """Stops showing reports (the batch's real rows take over) and returns the rows
        shown so far."""
        with self._lock:
            self._on_rows = None
            return self._shown

    def _show(self, force: bool) -> None:
        if self._on_rows is None:
            return
        now = time.monotonic()
        if not force and now - self._last < _MIN_INTERVAL_S:
            return
        done = min(max(self._done, 0.0), float(self._inputs))
        rows = int(done * self._rows_per_input + 1e-9)
        if rows != self._shown:
            self._on_rows(rows - self._shown)
            self._shown = rows
            self._last = now


def current_batch_progress() -> Optional[BatchProgress]:
    """The tracker of the batch being processed, or `None` outside a pipeline run."""
    return _current.get()


def track_batch(progress: Optional[BatchProgress]) -> contextvars.Token[Optional[BatchProgress]]:
    """Makes `progress` the tracker that reports in this context go to (the engine does this
    for each batch)."""
    return _current.set(progress)


def report_progress(inputs: float = 1) -> None:
    """Reports that `inputs` more inputs of the current batch are done (for LLMs whose
    `generate` handles its inputs one after another). Does nothing outside a pipeline run.

    Args:
        inputs: how many inputs finished since the last report.
    """
    progress = _current.get()
    if progress is not None:
        progress.add(inputs)
