"""One step during a run: takes its input batches, processes them, passes outputs on in order.

A step cuts batches from the rows reaching it (see `step_input.py`) and starts as many as
its in-flight limit allows. A task on an async LLM processes its batches on the event loop,
many at once (the LLM's limiter bounds the requests); any other step processes one batch at
a time in its worker thread (see `worker.py`). A batch whose output is stored from an earlier
run, computed from the same input and without failed rows, is read back instead of
computed. Every computed batch is queued for the run's folder as it finishes, and outputs are
passed on in input order, to every successor or, for a routing step, to those its routing
batch function picks (see `routing.py`). A step can also run elsewhere: the Ray engine gives
its node a `remote` (`RemoteStep`) that loads it on replicas and processes its batches there.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Optional, Protocol, Union

from potstill.errors import DamagedBatchError, PipelineRunError
from potstill.llms.base import AsyncLLM, describe_error
from potstill.llms.batch_jobs import use_job_store, uses_batch_jobs
from potstill.llms.cache import AnswerFile, default_response_cache_dir, open_store, use_stores
from potstill.pipeline.routing import StepRouting
from potstill.pipeline.step_batches import BatchToWrite, StepBatches, new_batch_id
from potstill.pipeline.step_input import (
    AlignedInput,
    ConvergingInput,
    Cut,
    Origin,
    RoutedInput,
)
from potstill.pipeline.step_jobs import StepJobs
from potstill.pipeline.worker import StepWorker
from potstill.steps.base import GeneratorStep, GlobalStep, _Step
from potstill.steps.context import reset_row_offset, set_row_offset
from potstill.steps.tasks.base import METADATA_COLUMN, Task, _Task
from potstill.typing import Row
from potstill.utils.batch_progress import BatchProgress, track_batch

if TYPE_CHECKING:
    from potstill.pipeline.engine import Engine

logger = logging.getLogger("potstill.pipeline")

_DEFAULT_ASYNC_BATCHES = 8
# Batches queued for a synchronous step: one running, one waiting, so its thread never idles.
_SYNC_QUEUE_DEPTH = 2
# A batch sent as provider batch jobs waits minutes to hours: a step's jobs run side by side.
_JOB_BATCHES_IN_FLIGHT = 1000


@dataclass
class Batch:
    """One input batch of a step.

    Attributes:
        seq: its number among the step's batches.
        data: one list of rows per predecessor.
        offset: the step's input rows before it.
        origin: for rows of a routed batch, where they come from.
        input_id: a hash of which rows of which upstream batches it holds: a stored output
            is reused only when it was computed from the same input.
    """

    seq: int
    data: list[list[Row]]
    offset: int
    origin: Optional[Origin]
    input_id: str


class _Finished(NamedTuple):
    """A processed batch waiting for the batches before it to be passed on."""

    rows: list[Row]
    batch_id: str
    origin: Optional[Origin]
    shown: int  # rows the display already counts for it


class RemoteStep(Protocol):
    """Where a step runs when not in this process (the Ray engine's replicas)."""

    async def start(self) -> None:
        """Loads the step wherever it runs."""

    async def process(self, data: list[list[Row]], offset: int) -> list[Row]:
        """Processes one batch (`data`: one list of rows per predecessor) and returns its
        output rows, raising what the step raised."""

    async def stop(self) -> None:
        """Unloads the step and releases what `start` acquired."""


class StepNode:
    """Runtime state of one step."""

    def __init__(self, engine: Engine, step: _Step, batches: StepBatches) -> None:
        self.engine = engine
        self.step = step
        self.name: str = step.name  # type: ignore[assignment]
        self.batches = batches
        self.predecessors = engine.dag.predecessors(self.name)
        self.successors: list[StepNode] = []
        self.finished_predecessors: set[str] = set()
        self.next_seq = 0
        self.rows_taken = 0
        self.rows_out = 0
        self.in_flight = 0
        self.completed: dict[int, _Finished] = {}
        self.next_emit = 0
        self.finished = False
        self.worker = StepWorker(self.name)
        self.remote: Optional[RemoteStep] = None  # set by an engine that runs it elsewhere
        self.jobs = StepJobs(self.name, batches, engine.progress)
        self._stores: Optional[tuple[AnswerFile, ...]] = None
        # Only tasks on an async LLM run on the loop; a task on a synchronous (local) LLM
        # runs in its step's worker thread, so its model is never called from two threads.
        self.uses_async = (
            isinstance(step, Task)
            and isinstance(step.llm, AsyncLLM)
            and step.supports_async_processing()
        )
        self.max_in_flight = self._max_in_flight()
        self.batch_size: int = getattr(step, "input_batch_size", None) or 1
        self.high_water = 2 * self.batch_size
        self.rows_per_input = step.expected_expansion() if isinstance(step, _Task) else 1
        function = engine.dag.routing_batch_function(self.name)
        self.routing = StepRouting(self.name, function, batches.path) if function else None
        self.input = self._new_input()

    def _max_in_flight(self) -> int:
        step = self.step
        if not (isinstance(step, Task) and step.allows_concurrent_batches()):
            return _SYNC_QUEUE_DEPTH
        if uses_batch_jobs(step.llm):
            return _JOB_BATCHES_IN_FLIGHT
        limit = getattr(step.llm, "max_concurrent_requests", None) or _DEFAULT_ASYNC_BATCHES
        per_batch = (step.input_batch_size or 1) * (
            1 if step.llm.generation_spec().native_num_generations else step.num_generations or 1
        )
        return max(2, 2 * math.ceil(limit / per_batch) + 1)

    def _new_input(self) -> Union[AlignedInput, RoutedInput, ConvergingInput]:
        dag = self.engine.dag
        if len(self.predecessors) == 1 and dag.receives_routed_batches(self.name):
            return RoutedInput(self.batch_size)
        if dag.is_convergence_step(self.name):
            return ConvergingInput(self.predecessors, self.batch_size, self._routing_decision)
        return AlignedInput(
            self.predecessors, self.batch_size, whole=isinstance(self.step, GlobalStep)
        )

    def _routing_decision(self, seq: int) -> Optional[list[str]]:
        """Where the routing step before this convergence step sent its batch `seq`."""
        source = self.engine.dag.predecessors(self.predecessors[0])[0]
        routing = self.engine.nodes[source].routing
        return routing.decision(seq) if routing is not None else None

    def response_stores(self) -> tuple[AnswerFile, ...]:
        """The stores this step's LLM requests go through: its journal, then the response
        cache (in the LLM's `response_cache_dir`) when the pipeline turns it on (looked up
        once per run, not once per batch)."""
        if self._stores is None:
            self._stores = self._open_stores()
        return self._stores

    def _open_stores(self) -> tuple[AnswerFile, ...]:
        if not isinstance(self.step, _Task):
            return ()
        journal = self.batches.journal()
        if not self.engine.use_response_cache:
            return (journal,)
        folder = self.step.llm.response_cache_dir or default_response_cache_dir()
        return (journal, open_store(Path(folder) / "responses.jsonl"))

    # -- lifecycle -----------------------------------------------------------------------

    def load(self) -> Awaitable[None]:
        """Loads the step: in its worker thread, or where it runs remotely."""
        if self.remote is not None:
            return self.remote.start()
        return self.worker.submit(self.step.load)

    async def unload(self) -> None:
        """Unloads the step (in its worker thread, or where it runs remotely)."""
        if self.remote is not None:
            await self.remote.stop()
        else:
            await self.worker.submit(self.step.unload)

    # -- input ---------------------------------------------------------------------------

    def receive(
        self, source: str, rows: list[Row], batch_id: str, origin: Optional[Origin] = None
    ) -> None:
        """Takes rows that predecessor `source` emitted (batch `batch_id`)."""
        self.input.receive(source, rows, batch_id, origin)
        self.pump()

    def upstream_finished(self, source: str) -> None:
        self.finished_predecessors.add(source)
        self.pump()

    @property
    def all_upstream_finished(self) -> bool:
        """Whether every predecessor has finished (no more rows will come)."""
        return len(self.finished_predecessors) == len(self.predecessors)

    def backlogged(self) -> bool:
        """Whether enough input waits here that the generators feeding it should pause."""
        return self.input.ready_rows() >= self.high_water

    def pump(self) -> None:
        """Starts as many batches as the input and the in-flight limit allow."""
        took = False
        while self.in_flight < self.max_in_flight and not self.engine.stopping:
            cut = self.input.take(self.all_upstream_finished)
            if cut is None:
                break
            took = True
            self.in_flight += 1
            self.engine.spawn(self._process(self._new_batch(cut)))
        if took:
            self.engine.pacing.changed()
        self._maybe_finish()

    def _new_batch(self, cut: Cut) -> Batch:
        input_id = hashlib.blake2b(repr(cut.provenance).encode(), digest_size=8).hexdigest()
        batch = Batch(self.next_seq, cut.data, self.rows_taken, cut.origin, input_id)
        self.next_seq += 1
        self.rows_taken += len(cut.data[0]) if cut.data else 0
        return batch

    # -- processing ----------------------------------------------------------------------

    async def _process(self, batch: Batch) -> None:
        shown = 0
        try:
            stored = await self._reuse(batch)
            if stored is not None:
                rows, batch_id = stored
            elif batch.origin is not None and not batch.data[0]:
                # An empty routed batch: nothing to process, only to pass on.
                rows, batch_id = [], new_batch_id()
            else:
                tracker = self._batch_progress(batch)
                try:
                    rows = await self._run_step(batch, tracker)
                finally:
                    shown = tracker.close() if tracker is not None else 0
                batch_id = new_batch_id()
                self.engine.folder.submit(
                    self.batches,
                    BatchToWrite(batch.seq, rows, batch_id, batch.input_id, self.failed(rows)),
                )
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.engine.fail(error)
            return
        self.in_flight -= 1
        self.completed[batch.seq] = _Finished(rows, batch_id, batch.origin, shown)
        while self.next_emit in self.completed:
            done = self.completed.pop(self.next_emit)
            self.emit(done.rows, done.batch_id, done.origin, done.shown)
            self.next_emit += 1
        self.pump()

    def _batch_progress(self, batch: Batch) -> Optional[BatchProgress]:
        """A tracker that shows the batch's finished inputs before the batch is done (only
        while the display is on)."""
        if not self.engine.progress.enabled or not batch.data:
            return None
        progress, name = self.engine.progress, self.name
        return BatchProgress(
            len(batch.data[0]), self.rows_per_input, lambda rows: progress.advance(name, rows)
        )

    async def _reuse(self, batch: Batch) -> Optional[tuple[list[Row], str]]:
        """The stored output of `batch` when it can be reused: computed from the same input,
        no failed row, file intact."""
        entry = self.batches.lookup(batch.seq)
        if entry is None or entry.failed or entry.input_id != batch.input_id:
            return None
        try:
            rows = await asyncio.to_thread(self.batches.read, batch.seq)
        except DamagedBatchError:  # named in a warning; the batch is computed again
            return None
        return rows, entry.batch_id

    def failed(self, rows: list[Row]) -> int:
        """How many rows this step failed on (their error is in `potstill_metadata`)."""
        key = f"error_{self.name}"
        failed = 0
        for row in rows:
            metadata = row.get(METADATA_COLUMN)
            if metadata and _has_error(metadata.get(key)):
                failed += 1
        return failed

    async def _run_step(self, batch: Batch, tracker: Optional[BatchProgress] = None) -> list[Row]:
        step = self.step
        if self.remote is not None:
            try:
                return await self.remote.process(batch.data, batch.offset)
            except Exception as error:
                return self._failed_batch(batch, error)
        # Answers already in the journal (or the response cache) are not requested again.
        use_stores(*self.response_stores())
        # Provider batch jobs are recorded in the step's store (a rerun re-attaches to them).
        use_job_store(self.jobs)
        # The LLM reports finished inputs to the batch's tracker (this task's context only).
        track_batch(tracker)
        try:
            if self.uses_async:
                return await process_async(step, batch.data, batch.offset)
            return await self.worker.submit(process_sync, step, batch.data, batch.offset)
        except Exception as error:
            return self._failed_batch(batch, error)

    def _failed_batch(self, batch: Batch, error: Exception) -> list[Row]:
        """The rows of a batch the step failed on (a failed global step stops the run)."""
        step = self.step
        if isinstance(step, GlobalStep):
            raise PipelineRunError(
                f"Global step {self.name!r} failed: {describe_error(error)}"
            ) from error
        logger.warning(
            "Step %r failed on batch %d (rows %d-%d): %s. Its output columns are set to "
            "None for these rows.",
            self.name,
            batch.seq,
            batch.offset,
            batch.offset + len(batch.data[0]) - 1,
            describe_error(error),
            exc_info=logger.isEnabledFor(logging.DEBUG),
        )
        return _rows_on_failure(step, batch.data[0], describe_error(error))

    # -- output --------------------------------------------------------------------------

    def emit(
        self,
        rows: list[Row],
        batch_id: str,
        origin: Optional[Origin] = None,
        shown: int = 0,
    ) -> None:
        """Passes a finished batch on.

        Args:
            rows: the batch's output rows.
            batch_id: the id its successors record as the origin of these rows.
            origin: for a batch of routed rows, where it came from (a convergence step
                joins the outputs of each routed batch).
            shown: rows the display already counts for this batch (reported while it ran);
                the display ends at exactly the rows produced.
        """
        self.rows_out += len(rows)
        self.engine.progress.advance(self.name, len(rows) - shown)
        if self.routing is not None:
            seq, chosen = self.routing.route([successor.name for successor in self.successors])
            for successor in self.successors:
                if successor.name in chosen:  # the whole of routed batch `seq`
                    successor.receive(self.name, rows, batch_id, (seq, True))
            return
        for successor in self.successors:
            successor.receive(self.name, rows, batch_id, origin)

    def _maybe_finish(self) -> None:
        if self.finished or isinstance(self.step, GeneratorStep):
            return
        if not self.all_upstream_finished:
            return
        if self.in_flight or self.completed or self.input.has_rows():
            return
        self.finish()

    def finish(self) -> None:
        """Records that the step is done and tells its successors."""
        self.finished = True
        if self.routing is not None:
            self.routing.close()
        self.engine.folder.submit_completion(self.batches, self.next_seq, self.rows_out)
        self.engine.progress.finish(self.name)
        for successor in self.successors:
            successor.upstream_finished(self.name)
        self.engine.node_finished()


async def process_async(step: _Step, data: list[list[Row]], offset: int) -> list[Row]:
    """Processes a batch of a task on an async LLM on the running event loop."""
    assert isinstance(step, Task)
    rows = await step.aprocess(step._apply_input_mappings(data[0]), row_offset=offset)
    return step._apply_output_mappings(rows)


def process_sync(step: _Step, data: list[list[Row]], offset: int) -> list[Row]:
    """Processes a batch of any other step (in its worker thread)."""
    token = set_row_offset(offset)
    try:
        return [row for chunk in step.process_applying_mappings(*data) for row in chunk]  # type: ignore[attr-defined]
    finally:
        reset_row_offset(token)


def _has_error(error: object) -> bool:
    if isinstance(error, list):  # `group_generations`: one error per generation
        return any(item is not None for item in error)
    return error is not None


def _rows_on_failure(step: _Step, rows: list[Row], error: str) -> list[Row]:
    empty = dict.fromkeys(step.get_outputs())
    if isinstance(step, _Task):
        empty["model_name"] = None
    failed = []
    for row in rows:
        metadata = {**(row.get(METADATA_COLUMN) or {}), f"error_{step.name}": error}
        failed.append({**row, **empty, METADATA_COLUMN: metadata})
    return failed
