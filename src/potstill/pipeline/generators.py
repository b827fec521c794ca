"""Running a generator step: its stored batches replayed, then new ones, paced by demand.

A generator first passes on the batches an earlier run stored, up to the first one that is
missing, damaged or has failed rows; it then continues from there, computing its batches in
its worker thread, one at a time (two ahead of what the loop has taken). It waits while a
step downstream of it has a backlog (rows it could take but has not started yet), so a fast
generator never floods memory.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any, Optional

from potstill.errors import DamagedBatchError, PipelineRunError
from potstill.llms.base import describe_error
from potstill.llms.cache import use_stores
from potstill.pipeline.step_batches import BatchToWrite, new_batch_id
from potstill.steps.base import GeneratorStep, GlobalStep

if TYPE_CHECKING:
    from potstill.pipeline.engine import Engine
    from potstill.pipeline.node import StepNode

_END = object()
# Batches a generator computes ahead of what the loop has taken.
_GENERATOR_PREFETCH = 2


class Pacing:
    """Holds generators back while the steps downstream of them have a backlog."""

    def __init__(self) -> None:
        self._events: list[asyncio.Event] = []

    def changed(self) -> None:
        """Wakes the waiting generators: a step started batches, so its backlog shrank."""
        for event in self._events:
            event.set()

    async def wait(self, watched: list[StepNode]) -> None:
        """Returns once none of the `watched` steps has a backlog."""
        if not any(node.backlogged() for node in watched):
            return
        event = asyncio.Event()
        self._events.append(event)
        try:
            while any(node.backlogged() for node in watched):
                event.clear()
                await event.wait()
        finally:
            self._events.remove(event)


class GeneratorRun:
    """One generator step's part of a run.

    Args:
        engine: the run.
        node: the generator step.
    """

    def __init__(self, engine: Engine, node: StepNode) -> None:
        self.engine = engine
        self.node = node
        self.limit = engine.max_generator_batches
        completion = node.batches.completion()
        # The batches of the generator's last complete run, when it has one.
        self.last: Optional[int] = completion["batches"] if completion is not None else None
        # Global steps wait for everything by design, so their backlog does not count.
        self.watched = [
            engine.nodes[name]
            for name in engine.dag.descendants(node.name)
            if not isinstance(engine.nodes[name].step, GlobalStep)
        ]

    async def run(self) -> None:
        """Passes on the stored batches, then new ones; then finishes the step."""
        # A generator task's requests go through its journal too (its worker inherits this).
        use_stores(*self.node.response_stores())
        seq, offset = await self._replay()
        if self._more_stored(seq) and not self._limit_reached(seq):
            seq = await self._generate(seq, offset)
        self.node.next_seq = seq
        self.node.finish()

    def _limit_reached(self, seq: int) -> bool:
        return self.limit is not None and seq >= self.limit

    def _more_stored(self, seq: int) -> bool:
        """Whether batch `seq` may exist (the last complete run, if any, had more)."""
        return self.last is None or seq < self.last

    async def _replay(self) -> tuple[int, int]:
        """Passes on the stored batches up to the first one that is missing, damaged or has
        failed rows.

        Returns:
            The number of batches passed on, and their rows.
        """
        node = self.node
        seq = offset = 0
        while self._more_stored(seq) and not self._limit_reached(seq):
            entry = node.batches.lookup(seq)
            if entry is None or entry.failed:
                break
            await self.engine.pacing.wait(self.watched)
            try:
                rows = await asyncio.to_thread(node.batches.read, seq)
            except DamagedBatchError:  # named in a warning; computed again from here
                break
            offset += len(rows)
            node.emit(rows, entry.batch_id)
            seq += 1
        return seq, offset

    async def _generate(self, seq: int, offset: int) -> int:
        """Computes and passes on the batches from batch `seq` (input row `offset`) on.

        Returns:
            The number of batches passed on in all.
        """
        node, step = self.node, self.node.step
        assert isinstance(step, GeneratorStep)
        depth = 1 if self.limit is not None else _GENERATOR_PREFETCH
        iterator = step.process_applying_mappings(offset=offset)
        pending: deque[asyncio.Future[Any]] = deque()
        try:
            while not self._limit_reached(seq):
                while len(pending) < depth:
                    pending.append(node.worker.submit(next, iterator, _END))
                await self.engine.pacing.wait(self.watched)
                item = await pending.popleft()
                if item is _END:
                    break
                rows, is_last = item
                batch_id = new_batch_id()
                self.engine.folder.submit(
                    node.batches, BatchToWrite(seq, rows, batch_id, None, node.failed(rows))
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
        return seq
