"""The engine: runs a pipeline's steps in one process on an asyncio event loop.

Each generator produces batches (in a worker thread, one at a time, paced by how much of its
output downstream steps still have to take). Every other step buffers rows from each of its
predecessors and cuts a batch as soon as `input_batch_size` aligned rows are there, so
downstream work starts before upstream ends. Tasks on an async LLM process many batches at
once on the loop (the LLM's limiter bounds the requests); any other step processes one batch
at a time in a worker thread. A step's outputs are passed on in input order.

A step with a routing batch function passes each batch it emits only to the successors the
function picks (the decision is recorded, so a resumed run repeats it). A step fed by routed
batches cuts its batches within each routed batch, and a *convergence step* (fed by several
routed steps) gets, for each routed batch, the outputs of the steps that received it.

Every finished batch is queued for the durable store as it is passed on; a background thread
writes it (see `store.py`), so a run killed at any moment may lose the last batches it had
finished, never part of one. A later run reuses a stored batch only when it was computed from
the same input (each batch records the ids of the batches it was cut from) and none of its
rows failed; anything else is computed again, answered requests coming from the journal, so
every row appears exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from potstill.errors import PotstillUserError
from potstill.llms.base import AsyncLLM, describe_error
from potstill.llms.cache import ResponseStore, default_response_cache_dir, open_store, use_stores
from potstill.llms.loading import loading_scope
from potstill.pipeline.dag import DAG
from potstill.pipeline.progress import Progress
from potstill.pipeline.routing_batch_function import RoutedBatch, RouteLog
from potstill.pipeline.store import (
    BatchToWrite,
    DamagedBatchError,
    RunStore,
    StepStore,
    new_batch_id,
)
from potstill.pipeline.worker import StepWorker
from potstill.steps.base import GeneratorStep, GlobalStep, _Step
from potstill.steps.context import reset_row_offset, set_row_offset
from potstill.steps.tasks.base import METADATA_COLUMN, Task, _Task
from potstill.typing import Row
from potstill.utils.batch_progress import BatchProgress, track_batch

logger = logging.getLogger("potstill.pipeline")

_END = object()
_DEFAULT_ASYNC_BATCHES = 8
# Batches queued for a synchronous step: one running, one waiting, so its thread never idles.
_SYNC_QUEUE_DEPTH = 2
# Batches a generator computes ahead of what the loop has taken.
_GENERATOR_PREFETCH = 2


class PipelineRunError(RuntimeError):
    """A step failed in a way that stops the pipeline (load failure, generator error...)."""


@dataclass
class _Batch:
    seq: int
    data: list[list[Row]]
    offset: int
    # For a step fed by routed batches: which routed batch the rows come from, and whether
    # this batch holds its last rows.
    origin: Optional[tuple[int, bool]] = None
    # Which rows of which upstream batches it holds: a stored batch is reused only when it
    # was computed from the same input.
    input_id: Optional[str] = None


class _Node:
    """Runtime state of one step."""

    def __init__(self, engine: Engine, step: _Step, store: StepStore) -> None:
        self.engine = engine
        self.step = step
        self.name: str = step.name  # type: ignore[assignment]
        self.store = store
        self.predecessors = engine.dag.predecessors(self.name)
        self.successors: list[_Node] = []
        self.buffers: dict[str, list[Row]] = {name: [] for name in self.predecessors}
        # Per predecessor, where the buffered rows come from: [batch id, first row, rows].
        self.sources: dict[str, deque[list[Any]]] = {name: deque() for name in self.predecessors}
        self.finished_predecessors: set[str] = set()
        self.next_seq = 0
        self.rows_taken = 0
        self.rows_out = 0
        self.in_flight = 0
        # seq -> (output rows, their batch id, rows the display already counts)
        self.completed: dict[int, tuple[list[Row], str, int]] = {}
        self.next_emit = 0
        self.finished = False
        self.worker = StepWorker(self.name)
        # Only tasks on an async LLM run on the loop; a task on a synchronous (local) LLM
        # runs in its step's worker thread, so its model is never called from two threads.
        self.uses_async = (
            isinstance(step, Task)
            and isinstance(step.llm, AsyncLLM)
            and step.supports_async_processing()
        )
        self.max_in_flight = self._max_in_flight()
        batch_size = getattr(step, "input_batch_size", None) or 1
        self.batch_size = batch_size
        self.high_water = 2 * batch_size
        self.rows_per_input = step.expected_expansion() if isinstance(step, _Task) else 1
        # Routing (see the module docstring).
        self.router = engine.dag.routing_batch_function(self.name)
        self.route_log = RouteLog(store.path / "routes.jsonl") if self.router else None
        self.emitted = 0
        self.routed = len(self.predecessors) == 1 and engine.dag.receives_routed_batches(self.name)
        # Routed batches not yet cut: (routed batch number, rows, batch id, first row).
        self.segments: deque[tuple[int, list[Row], str, int]] = deque()
        self.origins: dict[int, tuple[int, bool]] = {}
        self.converges = engine.dag.is_convergence_step(self.name)
        self.units: dict[int, dict[str, list[Row]]] = {}
        self.unit_sources: dict[int, dict[str, list[str]]] = {}
        self.unit_key = ""
        self.unit_taken = 0
        self.closed: dict[int, set[str]] = {}
        self.next_unit = 0
        self.unit: list[list[Row]] = []

    def _max_in_flight(self) -> int:
        step = self.step
        if not (isinstance(step, Task) and step.allows_concurrent_batches()):
            return _SYNC_QUEUE_DEPTH
        limit = getattr(step.llm, "max_concurrent_requests", None) or _DEFAULT_ASYNC_BATCHES
        per_batch = (step.input_batch_size or 1) * (
            1 if step.llm.generation_spec().native_num_generations else step.num_generations or 1
        )
        return max(2, 2 * math.ceil(limit / per_batch) + 1)

    # -- input ---------------------------------------------------------------------------

    def receive(self, source: str, rows: list[Row], batch_id: str) -> None:
        self.buffers[source].extend(rows)
        if rows:
            self.sources[source].append([batch_id, 0, len(rows)])
        self.pump()

    def receive_routed(self, origin: int, rows: list[Row], batch_id: str) -> None:
        """Takes routed batch `origin` of the (routing) predecessor."""
        self.segments.append((origin, rows, batch_id, 0))
        self.pump()

    def receive_unit_part(
        self, source: str, origin: int, rows: list[Row], last: bool, batch_id: str
    ) -> None:
        """Takes rows a routed predecessor produced from routed batch `origin`."""
        self.units.setdefault(origin, {}).setdefault(source, []).extend(rows)
        self.unit_sources.setdefault(origin, {}).setdefault(source, []).append(batch_id)
        if last:
            self.closed.setdefault(origin, set()).add(source)
        self.pump()

    def upstream_finished(self, source: str) -> None:
        self.finished_predecessors.add(source)
        self.pump()

    def ready_rows(self) -> int:
        """Rows this step could take right now (aligned across predecessors)."""
        if self.routed:
            return sum(len(segment[1]) for segment in self.segments)
        if not self.buffers:
            return 0
        return min(len(buffer) for buffer in self.buffers.values())

    def _has_input(self) -> bool:
        return bool(any(self.buffers.values()) or self.segments or self.units or any(self.unit))

    def pump(self) -> None:
        """Starts as many batches as the buffers and the in-flight limit allow."""
        took = False
        while self.in_flight < self.max_in_flight:
            batch = self._take_batch()
            if batch is None:
                break
            took = True
            self.in_flight += 1
            self.engine.spawn(self._process(batch))
        if took:
            self.engine.capacity_changed()
        self._maybe_finish()

    def _take_batch(self) -> Optional[_Batch]:
        if self.routed:
            return self._take_routed_batch()
        if self.converges:
            return self._take_converging_batch()
        all_in = len(self.finished_predecessors) == len(self.predecessors)
        if isinstance(self.step, GlobalStep):
            if not all_in or self.next_seq > 0:
                return None
            data = [self.buffers[name] for name in self.predecessors]
            if not any(data):
                return None
            self.buffers = {name: [] for name in self.predecessors}
        else:
            ready = self.ready_rows()
            if ready >= self.batch_size:
                size = [self.batch_size] * len(self.predecessors)
            elif all_in and any(self.buffers.values()):
                size = [min(len(self.buffers[n]), self.batch_size) for n in self.predecessors]
            else:
                return None
            data = []
            for name, count in zip(self.predecessors, size):
                buffer = self.buffers[name]
                data.append(buffer[:count])
                self.buffers[name] = buffer[count:]
        provenance = [
            self._take_sources(name, len(rows)) for name, rows in zip(self.predecessors, data)
        ]
        return self._new_batch(data, provenance)

    def _new_batch(
        self, data: list[list[Row]], provenance: Any, origin: Optional[tuple[int, bool]] = None
    ) -> _Batch:
        """The next batch of `data`, identified by `provenance` (which rows of which upstream
        batches it holds)."""
        input_id = hashlib.blake2b(repr(provenance).encode(), digest_size=8).hexdigest()
        batch = _Batch(
            seq=self.next_seq, data=data, offset=self.rows_taken, origin=origin, input_id=input_id
        )
        self.next_seq += 1
        self.rows_taken += len(data[0]) if data else 0
        return batch

    def _take_routed_batch(self) -> Optional[_Batch]:
        """The next batch from the oldest routed batch (batches never mix two of them)."""
        if not self.segments:
            return None
        origin, rows, batch_id, start = self.segments[0]
        taken, rest = rows[: self.batch_size], rows[self.batch_size :]
        if rest:
            self.segments[0] = (origin, rest, batch_id, start + len(taken))
        else:
            self.segments.popleft()
        provenance = [(batch_id, start, len(taken))]
        return self._new_batch([taken], provenance, origin=(origin, not rest))

    def _take_converging_batch(self) -> Optional[_Batch]:
        """The next aligned batch of the outputs that the routed steps produced from one
        routed batch, routed batches in order."""
        while not any(self.unit):
            decisions = self.engine.routes.get(self.routing_source, {})
            chosen = decisions.get(self.next_unit)
            if chosen is None:
                return None
            branches = [name for name in self.predecessors if name in chosen]
            if not all(name in self.closed.get(self.next_unit, ()) for name in branches):
                return None
            parts = self.units.pop(self.next_unit, {})
            sources = self.unit_sources.pop(self.next_unit, {})
            self.closed.pop(self.next_unit, None)
            self.unit = [parts.get(name, []) for name in branches]
            self.unit_key = repr([(name, sources.get(name, [])) for name in branches])
            self.unit_taken = 0
            self.next_unit += 1
        data = [rows[: self.batch_size] for rows in self.unit]
        self.unit = [rows[self.batch_size :] for rows in self.unit]
        provenance = (self.unit_key, self.unit_taken, len(data[0]) if data else 0)
        self.unit_taken += provenance[2]
        return self._new_batch(data, provenance)

    @property
    def routing_source(self) -> str:
        """The step routing the batches that a convergence step joins."""
        return self.engine.dag.predecessors(self.predecessors[0])[0]

    def _take_sources(self, name: str, count: int) -> list[tuple[str, int, int]]:
        """Consumes the origin of `count` buffered rows of predecessor `name`."""
        sources = self.sources[name]
        taken = []
        while count:
            batch_id, first, rows = sources[0]
            used = min(rows, count)
            taken.append((batch_id, first, used))
            if used == rows:
                sources.popleft()
            else:
                sources[0][1] += used
                sources[0][2] -= used
            count -= used
        return taken

    # -- processing ----------------------------------------------------------------------

    async def _process(self, batch: _Batch) -> None:
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
                self.engine.store.submit(
                    self.store,
                    BatchToWrite(batch.seq, rows, batch_id, batch.input_id, self.failed(rows)),
                )
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.engine.fail(error)
            return
        self.in_flight -= 1
        self.completed[batch.seq] = (rows, batch_id, shown)
        if batch.origin is not None:
            self.origins[batch.seq] = batch.origin
        while self.next_emit in self.completed:
            rows, batch_id, shown = self.completed.pop(self.next_emit)
            self.emit(rows, batch_id, self.origins.pop(self.next_emit, None), shown)
            self.next_emit += 1
        self.pump()

    def _batch_progress(self, batch: _Batch) -> Optional[BatchProgress]:
        """A tracker that shows the batch's finished inputs before the batch is done (only
        while the display is on)."""
        if not self.engine.progress.enabled or not batch.data:
            return None
        progress, name = self.engine.progress, self.name
        return BatchProgress(
            len(batch.data[0]), self.rows_per_input, lambda rows: progress.advance(name, rows)
        )

    async def _reuse(self, batch: _Batch) -> Optional[tuple[list[Row], str]]:
        """The stored output of `batch` when it can be reused: computed from the same input,
        no failed row, file intact."""
        entry = self.store.lookup(batch.seq)
        if entry is None or entry.failed or entry.input_id != batch.input_id:
            return None
        try:
            rows = await asyncio.to_thread(self.store.read, batch.seq)
        except DamagedBatchError:  # the store named the file in a warning
            return None
        return rows, entry.batch_id

    def failed(self, rows: list[Row]) -> int:
        """How many rows this step failed on (their error is in `potstill_metadata`)."""
        key = f"error_{self.name}"
        return sum(1 for row in rows if _has_error((row.get(METADATA_COLUMN) or {}).get(key)))

    async def _run_step(self, batch: _Batch, tracker: Optional[BatchProgress] = None) -> list[Row]:
        step = self.step
        # Answers already in the journal (or the response cache) are not requested again.
        use_stores(*self.engine.response_stores(self))
        # The LLM reports finished inputs to the batch's tracker (this task's context only).
        track_batch(tracker)
        try:
            if self.uses_async:
                assert isinstance(step, Task)
                inputs = step._apply_input_mappings(batch.data[0])
                rows = await step.aprocess(inputs, row_offset=batch.offset)
                return step._apply_output_mappings(rows)
            return await self.worker.submit(_process_sync, step, batch.data, batch.offset)
        except Exception as error:
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

    def emit(
        self,
        rows: list[Row],
        batch_id: str,
        origin: Optional[tuple[int, bool]] = None,
        shown: int = 0,
    ) -> None:
        """Passes a finished batch on.

        Args:
            rows: the batch's output rows.
            batch_id: the id its successors record as the origin of these rows.
            origin: for a batch of routed rows, where it came from (see `receive_unit_part`).
            shown: rows the display already counts for this batch (reported while it ran);
                the display ends at exactly the rows produced.
        """
        self.rows_out += len(rows)
        self.engine.progress.advance(self.name, len(rows) - shown)
        if self.router is not None:
            chosen = self._route()
            for successor in self.successors:
                if successor.name in chosen:
                    successor.receive_routed(self.emitted - 1, rows, batch_id)
            return
        for successor in self.successors:
            if successor.converges and origin is not None:
                successor.receive_unit_part(self.name, origin[0], rows, origin[1], batch_id)
            else:
                successor.receive(self.name, rows, batch_id)

    def _route(self) -> list[str]:
        """Which successors get the next emitted batch (the recorded decision on resume)."""
        assert self.router is not None and self.route_log is not None
        seq = self.emitted
        self.emitted += 1
        chosen = self.route_log.get(seq)
        names = [successor.name for successor in self.successors]
        if chosen is None:
            try:
                chosen = self.router.route_batch(RoutedBatch(self.name, seq), names)
            except Exception as error:
                raise PipelineRunError(
                    f"The routing batch function of step {self.name!r} failed on batch {seq}: "
                    f"{describe_error(error)}"
                ) from error
            self.route_log.record(seq, chosen)
        else:
            self.router._register(RoutedBatch(self.name, seq), chosen)
        self.engine.routes.setdefault(self.name, {})[seq] = chosen
        return chosen

    def _maybe_finish(self) -> None:
        if self.finished or isinstance(self.step, GeneratorStep):
            return
        if len(self.finished_predecessors) < len(self.predecessors):
            return
        if self.in_flight or self.completed or self._has_input():
            return
        self.finish()

    def finish(self) -> None:
        self.finished = True
        if self.route_log is not None:
            self.route_log.close()
        self.engine.store.submit_completion(self.store, self.next_seq, self.rows_out)
        self.engine.progress.finish(self.name)
        for successor in self.successors:
            successor.upstream_finished(self.name)
        self.engine.node_finished()


class Engine:
    """Runs the steps of a DAG to completion."""

    def __init__(
        self,
        dag: DAG,
        store: RunStore,
        step_stores: dict[str, StepStore],
        progress: Progress,
        max_generator_batches: Optional[int] = None,
        use_response_cache: bool = False,
    ) -> None:
        self.dag = dag
        self.use_response_cache = use_response_cache
        self.store = store
        self.progress = progress
        self.max_generator_batches = max_generator_batches
        self.nodes = {name: _Node(self, dag.steps[name], step_stores[name]) for name in dag.steps}
        for name, node in self.nodes.items():
            node.successors = [self.nodes[s] for s in dag.successors(name)]
        self._tasks: set[asyncio.Task[Any]] = set()
        self._remaining = len(self.nodes)
        self._done: Optional[asyncio.Event] = None
        self._capacity_events: list[asyncio.Event] = []
        self._failure: Optional[BaseException] = None
        # Routing step -> its emitted batch number -> the successors that received it.
        self.routes: dict[str, dict[int, list[str]]] = {}

    async def run(self) -> None:
        """Loads every step, runs the pipeline, unloads every step."""
        self._done = asyncio.Event()
        loop = asyncio.get_running_loop()
        # A write that fails (e.g. a column with mixed types) stops the run at once.
        self.store.on_error = lambda error: _call_soon(loop, self.fail, error)
        await self._load_all()
        try:
            for node in self.nodes.values():
                if isinstance(node.step, GeneratorStep):
                    self.spawn(self._run_generator(node))
            await self._done.wait()
            if self._failure is not None:
                raise self._failure
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            await asyncio.to_thread(self.store.flush)
            for node in self.nodes.values():
                if node.route_log is not None:
                    node.route_log.close()
            await self._unload_all()

    def response_stores(self, node: _Node) -> tuple[ResponseStore, ...]:
        """The stores a step's LLM requests go through: its journal, then the response cache
        (in the LLM's `response_cache_dir`) when the pipeline turns it on."""
        if not isinstance(node.step, _Task):
            return ()
        journal = node.store.journal()
        if not self.use_response_cache:
            return (journal,)
        folder = node.step.llm.response_cache_dir or default_response_cache_dir()
        return (journal, open_store(Path(folder) / "responses.jsonl"))

    def spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.fail(task.exception())  # type: ignore[arg-type]

    def fail(self, error: BaseException) -> None:
        if self._failure is None:
            self._failure = error
        assert self._done is not None
        self._done.set()

    def node_finished(self) -> None:
        self._remaining -= 1
        if self._remaining == 0:
            assert self._done is not None
            self._done.set()

    def capacity_changed(self) -> None:
        for event in self._capacity_events:
            event.set()

    # -- generators ----------------------------------------------------------------------

    async def _run_generator(self, node: _Node) -> None:
        step = node.step
        assert isinstance(step, GeneratorStep)
        # A generator task's requests go through its journal too (its worker inherits this).
        use_stores(*self.response_stores(node))
        completion = node.store.completion()
        last = completion["batches"] if completion is not None else None
        seq = 0
        offset = 0
        watched = self._backlog_watch(node)
        # Stored batches are replayed up to the first one that is missing, damaged or has
        # failed rows; the generator then continues from there.
        while (last is None or seq < last) and not self._generator_limit_reached(seq):
            entry = node.store.lookup(seq)
            if entry is None or entry.failed:
                break
            await self._wait_for_capacity(watched)
            try:
                rows = await asyncio.to_thread(node.store.read, seq)
            except DamagedBatchError:  # the store named the file in a warning
                break
            offset += len(rows)
            node.emit(rows, entry.batch_id)
            seq += 1
        if (last is None or seq < last) and not self._generator_limit_reached(seq):
            depth = 1 if self.max_generator_batches is not None else _GENERATOR_PREFETCH
            iterator = step.process_applying_mappings(offset=offset)
            pending: deque[asyncio.Future[Any]] = deque()
            try:
                while not self._generator_limit_reached(seq):
                    while len(pending) < depth:
                        pending.append(node.worker.submit(next, iterator, _END))
                    await self._wait_for_capacity(watched)
                    item = await pending.popleft()
                    if item is _END:
                        break
                    rows, is_last = item
                    batch_id = new_batch_id()
                    self.store.submit(
                        node.store, BatchToWrite(seq, rows, batch_id, None, node.failed(rows))
                    )
                    node.emit(rows, batch_id)
                    seq += 1
                    if is_last:
                        break
            except PipelineRunError:
                raise
            except Exception as error:
                raise PipelineRunError(
                    f"Generator step {node.name!r} failed: {describe_error(error)}"
                ) from error
            finally:
                # Runs after the prefetched calls, in the generator's own thread.
                await asyncio.gather(*pending, return_exceptions=True)
                close = getattr(iterator, "close", None)
                if close is not None:
                    await node.worker.submit(close)
        node.next_seq = seq
        node.finish()

    def _generator_limit_reached(self, seq: int) -> bool:
        return self.max_generator_batches is not None and seq >= self.max_generator_batches

    def _backlog_watch(self, node: _Node) -> list[_Node]:
        """The steps downstream of a generator whose backlog paces it (global steps wait for
        everything by design, so they do not count)."""
        return [
            self.nodes[name]
            for name in self.dag.descendants(node.name)
            if not isinstance(self.nodes[name].step, GlobalStep)
        ]

    async def _wait_for_capacity(self, watched: list[_Node]) -> None:
        if all(n.ready_rows() < n.high_water for n in watched):
            return
        event = asyncio.Event()
        self._capacity_events.append(event)
        try:
            while not all(n.ready_rows() < n.high_water for n in watched):
                event.clear()
                await event.wait()
        finally:
            self._capacity_events.remove(event)

    # -- loading -------------------------------------------------------------------------

    async def _load_all(self) -> None:
        steps = list(self.dag.steps.values())
        with loading_scope():  # an LLM shared by several steps loads once
            loads = [self.nodes[step.name].worker.submit(step.load) for step in steps]  # type: ignore[index]
        results = await asyncio.gather(*loads, return_exceptions=True)
        failures = [(s, r) for s, r in zip(steps, results) if isinstance(r, BaseException)]
        if failures:
            await self._unload_all()
            step, error = failures[0]
            if isinstance(error, PotstillUserError):
                raise type(error)(f"Step {step.name!r} failed to load: {error}") from error
            raise PipelineRunError(
                f"Step {step.name!r} failed to load: {describe_error(error)}"
            ) from error

    async def _unload_all(self) -> None:
        for node in self.nodes.values():
            try:
                await node.worker.submit(node.step.unload)
            except Exception as error:  # unloading must not hide the run's outcome
                logger.warning("Step %r failed to unload: %s", node.name, describe_error(error))
            finally:
                node.worker.close()


def _process_sync(step: _Step, data: list[list[Row]], offset: int) -> list[Row]:
    token = set_row_offset(offset)
    try:
        return [row for chunk in step.process_applying_mappings(*data) for row in chunk]  # type: ignore[attr-defined]
    finally:
        reset_row_offset(token)


def _has_error(error: Any) -> bool:
    if isinstance(error, list):  # `group_generations`: one error per generation
        return any(item is not None for item in error)
    return error is not None


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Any, *args: Any) -> None:
    """Schedules `callback` on `loop` from another thread (nothing once the loop is closed)."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)


def _rows_on_failure(step: _Step, rows: list[Row], error: str) -> list[Row]:
    empty = dict.fromkeys(step.get_outputs())
    if isinstance(step, _Task):
        empty["model_name"] = None
    failed = []
    for row in rows:
        metadata = {**(row.get(METADATA_COLUMN) or {}), f"error_{step.name}": error}
        failed.append({**row, **empty, METADATA_COLUMN: metadata})
    return failed
