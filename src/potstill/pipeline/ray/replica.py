"""One replica of a step: a Ray actor that loads the step and processes its batches.

A replica receives its step pickled (configuration and secrets, in memory only: see
`potstill.utils.pickling`), and processes a batch exactly as the local engine does
(`potstill.pipeline.node`): a task on an async LLM on the actor's event loop, several batches
at once; any other step in one worker thread, one batch at a time, so a local model is never
called from two threads. Loading happens on the first call (`ready`), and again after Ray
restarts a replica that died.

Before the step loads, each of its LLMs is adapted to running beside other replicas:

- its `max_concurrent_requests` becomes this replica's share of the LLM's limit;
- its limiter becomes a `SharedLimiter` when the LLM has limits or other replicas (see
  `limiter.py`);
- it keeps its answers through the run's `StoreSink` (see `store_sink.py`), not in files of
  the worker's machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
from dataclasses import dataclass
from typing import Any, Optional

from potstill.errors import PipelineRunError
from potstill.llms.base import LLM, describe_error
from potstill.llms.cache import use_stores
from potstill.pipeline.node import process_async, process_sync
from potstill.pipeline.ray.limiter import SharedLimiter
from potstill.pipeline.ray.store_sink import (
    FLUSH_INTERVAL_S,
    AnswerBuffer,
    RemoteCache,
    RemoteJournal,
)
from potstill.pipeline.worker import StepWorker
from potstill.steps.base import _Step
from potstill.typing import Row


@dataclass(frozen=True)
class LLMSetup:
    """How one LLM of the step runs in a replica.

    Attributes:
        field: the step's field holding it.
        concurrency: this replica's share of its `max_concurrent_requests` (`None`: as is).
        limiter: its `LimiterActor`, or `None` when it needs none.
        limited: whether it has requests/tokens-per-minute limits.
        cache_path: the response cache file it uses, or `None` when the cache is off.
    """

    field: str
    concurrency: Optional[int] = None
    limiter: Any = None
    limited: bool = False
    cache_path: Optional[str] = None


@dataclass(frozen=True)
class ReplicaSetup:
    """What a replica needs besides its step.

    Attributes:
        step_name: the step's name.
        uses_async: process batches on the event loop (a task on an async LLM).
        sink: the run's `StoreSink` (`None` when the step keeps no answers).
        llms: the step's LLMs.
    """

    step_name: str
    uses_async: bool
    sink: Any = None
    llms: tuple[LLMSetup, ...] = ()


class StepReplica:
    """One replica of a step (made a Ray actor by `pool.py`).

    Args:
        payload: the step, pickled.
        setup: the rest (see `ReplicaSetup`).
    """

    def __init__(self, payload: bytes, setup: ReplicaSetup) -> None:
        self._payload = payload
        self._setup = setup
        self._step: Optional[_Step] = None
        self._loading: Optional[asyncio.Lock] = None
        self._worker = StepWorker(setup.step_name)
        self._limiters: dict[str, SharedLimiter] = {}
        self._journal: Optional[AnswerBuffer] = None
        self._caches: list[tuple[RemoteCache, AnswerBuffer]] = []
        self._flusher: Optional[asyncio.Task[None]] = None

    async def ready(self) -> dict[str, Any]:
        """Loads the step (if not yet); returns where the replica runs."""
        import ray

        await self._loaded()
        context = ray.get_runtime_context()
        return {
            "node_id": context.get_node_id(),
            "actor_id": context.get_actor_id(),
            "pid": os.getpid(),
        }

    async def process(self, data: list[list[Row]], offset: int) -> list[Row]:
        """Processes one batch, as the local engine does.

        Args:
            data: one list of rows per predecessor.
            offset: the step's input rows before the batch.

        Returns:
            The output rows.
        """
        step = await self._loaded()
        stores: list[Any] = []
        sink = self._setup.sink
        if self._journal is not None:
            rows = len(data[0]) if data else 0
            known = await sink.recall.remote(self._setup.step_name, offset, offset + rows)
            stores.append(RemoteJournal(known, self._journal))
        stores.extend(cache for cache, _ in self._caches)
        use_stores(*stores)
        try:
            if self._setup.uses_async:
                return await process_async(step, data, offset)
            return await self._worker.submit(process_sync, step, data, offset)
        finally:
            self._flush()

    async def cool_down(self, key: str, seconds: float) -> None:
        """Pauses the requests of the step's LLM `key` (a 429 another replica got)."""
        limiter = self._limiters.get(key)
        if limiter is not None:
            limiter.pause(seconds)

    async def stop(self) -> None:
        """Unloads the step and hands every buffered answer to the sink."""
        if self._flusher is not None:
            self._flusher.cancel()
        try:
            if self._step is not None:
                await self._worker.submit(self._step.unload)
        finally:
            pending = [ref for ref in self._flush() if ref is not None]
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            self._worker.close()

    # -- loading -------------------------------------------------------------------------

    async def _loaded(self) -> _Step:
        if self._step is not None:
            return self._step
        if self._loading is None:
            self._loading = asyncio.Lock()
        async with self._loading:
            if self._step is None:
                step = self._unpickle()
                await self._prepare(step)
                await self._worker.submit(step.load)
                self._step = step
                self._flusher = asyncio.get_running_loop().create_task(self._flush_often())
        return self._step

    def _unpickle(self) -> _Step:
        try:
            return pickle.loads(self._payload)
        except Exception as error:
            raise PipelineRunError(
                f"the step cannot be rebuilt on a Ray worker: {describe_error(error)}. "
                "Its classes must be importable there: install your code on every node, or "
                "pass `ray_init_kwargs={'runtime_env': {'working_dir': '.'}}` (or "
                "`py_modules`) to `pipeline.ray(...)`."
            ) from None

    async def _prepare(self, step: _Step) -> None:
        """Adapts the step's LLMs to running beside other replicas (see the module docs)."""
        import ray

        sink = self._setup.sink
        me = ray.get_runtime_context().get_actor_id()
        if sink is not None:
            name = self._setup.step_name
            self._journal = AnswerBuffer(lambda entries: sink.append.remote(name, entries))
        for setup in self._setup.llms:
            llm = getattr(step, setup.field)
            if not isinstance(llm, LLM):
                continue
            if setup.concurrency is not None:
                llm.max_concurrent_requests = setup.concurrency  # type: ignore[attr-defined]
            if llm.use_response_cache:  # served by the sink (below), not a local file
                llm.use_response_cache = False
            if setup.limiter is not None:
                limiter = SharedLimiter(setup.limiter, setup.limited, me)
                llm._limiter = limiter  # type: ignore[attr-defined]
                self._limiters[setup.field] = limiter
            if setup.cache_path is not None and sink is not None:
                self._caches.append(await self._remote_cache(sink, setup.cache_path))

    async def _remote_cache(self, sink: Any, path: str) -> tuple[RemoteCache, AnswerBuffer]:
        import ray

        keys = set(await sink.cache_keys.remote(path))
        buffer = AnswerBuffer(lambda entries: sink.cache_put.remote(path, entries))
        # A cached answer is fetched when a request needs it; the call blocks the request's
        # thread (the answer comes from the driver's node in about a millisecond).
        cache = RemoteCache(
            lambda wanted: ray.get(sink.cache_get.remote(path, wanted)), keys, buffer
        )
        return cache, buffer

    # -- answers on their way to the sink --------------------------------------------------

    def _flush(self) -> list[Any]:
        buffers = [self._journal] if self._journal is not None else []
        buffers += [buffer for _, buffer in self._caches]
        return [buffer.flush() for buffer in buffers]

    async def _flush_often(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            with contextlib.suppress(Exception):
                self._flush()
