"""The background thread that writes a run's folder, and the messages it takes.

The event loop never waits on disk: it queues a message (a finished batch, a step's
completion, the pipeline's configuration) and goes on. The thread takes the messages queued
within `COALESCE_S` of the first one (or until the run asks for everything to be written)
and writes them in order, each run of consecutive batches of a step as one file: a fast step
gets a few large files instead of one small file per batch, and the thread wakes a few times
a second instead of once per batch. (A run killed meanwhile loses at most those batches; the
answers of their LLM requests are in the step's journal, so the next run rebuilds them
without sending them again.) A step's completion is written after its batches, and a write
that fails costs only itself: the error is reported (to stop the run) and the other messages
are still written.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from potstill.pipeline.step_batches import BatchToWrite, StepBatches

if TYPE_CHECKING:
    from potstill.pipeline.run_folder import RunFolder


@dataclass(frozen=True)
class WriteBatch:
    """Write a finished batch of a step."""

    step: StepBatches
    batch: BatchToWrite


@dataclass(frozen=True)
class MarkComplete:
    """Record that a step finished with `batches` batches and `rows` rows (written after the
    step's batches)."""

    step: StepBatches
    batches: int
    rows: int


@dataclass(frozen=True)
class WriteConfig:
    """Write the pipeline's configuration (`pipeline.yaml`) in the run's folder."""

    folder: RunFolder
    dump: dict[str, Any]


WriterMessage = Union[WriteBatch, MarkComplete, WriteConfig]

COALESCE_S = 0.02
"""How long the thread waits for more messages after the first one before writing."""
_WAKE = object()  # `flush`: write what is queued now


class BatchWriter:
    """The thread that performs queued writes, grouping consecutive batches.

    Args:
        report: called (from the thread) with the first write error, so the run can stop at
            once instead of when it ends.
    """

    def __init__(self, report: Callable[[BaseException], None]) -> None:
        # `None` asks the thread to stop once it has written what is queued before it.
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._done = threading.Condition()
        self._outstanding = 0
        self._error: Optional[BaseException] = None
        self._report = report
        self._thread = threading.Thread(target=self._run, name="potstill-batch-writer", daemon=True)
        self._thread.start()

    def put(self, message: WriterMessage) -> None:
        """Queues a write."""
        with self._done:
            self._outstanding += 1
        self._queue.put(message)

    def flush(self) -> None:
        """Waits for every queued write and re-raises the first write error."""
        self._queue.put(_WAKE)  # no waiting for more messages
        with self._done:
            self._done.wait_for(lambda: self._outstanding == 0)
            error, self._error = self._error, None
        if error is not None:
            raise error

    def stop(self) -> None:
        """Lets the thread write what is queued, and waits for it to end."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            items = self._collect()
            stopping = items[-1] is None
            work = [item for item in items if item is not None and item is not _WAKE]
            try:
                for error in perform(work):
                    if self._error is None:
                        self._error = error
                        self._report(error)
            finally:
                with self._done:
                    self._outstanding -= len(work)
                    self._done.notify_all()
            if stopping:
                return

    def _collect(self) -> list[Any]:
        """The next messages: the first one, and those that follow within `COALESCE_S`
        (until `flush` or `stop` asks for what is queued)."""
        items = [self._queue.get()]
        deadline = time.monotonic() + COALESCE_S
        while items[-1] is not None and items[-1] is not _WAKE:
            left = deadline - time.monotonic()
            try:
                items.append(
                    self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
                )
            except queue.Empty:
                break
        return items


def perform(messages: list[WriterMessage]) -> list[BaseException]:
    """Writes queued messages in order, merging runs of consecutive batches of one step.

    A failed write costs only itself: the other messages are still written.

    Args:
        messages: what was queued, oldest first.

    Returns:
        The errors, in order.
    """
    pending: dict[int, tuple[StepBatches, list[BatchToWrite]]] = {}
    errors: list[BaseException] = []

    def attempt(write: Callable[..., Any], *args: Any) -> None:
        try:
            write(*args)
        except BaseException as error:  # reported to the run; the writer carries on
            errors.append(error)

    def write_pending(step: StepBatches) -> None:
        entry = pending.pop(id(step), None)
        if entry is None:
            return
        batches = sorted(entry[1], key=lambda batch: batch.seq)
        run = [batches[0]]
        for batch in batches[1:]:
            if batch.seq == run[-1].seq + 1:
                run.append(batch)
            else:
                attempt(step.write_run, run)
                run = [batch]
        attempt(step.write_run, run)

    for message in messages:
        if isinstance(message, WriteBatch):
            pending.setdefault(id(message.step), (message.step, []))[1].append(message.batch)
        elif isinstance(message, MarkComplete):
            write_pending(message.step)
            attempt(message.step.mark_complete, message.batches, message.rows)
        else:
            attempt(message.folder.write_config, message.dump)
    for step, _ in list(pending.values()):
        write_pending(step)
    return errors
