"""The engine: runs a pipeline's steps in one process on an asyncio event loop.

Each generator produces batches in a worker thread, paced by how much of its output the
steps downstream still have to take (see `generators.py`). Every other step cuts its input
into batches as soon as enough rows are there, so downstream work starts before upstream
ends (see `step_input.py`), and processes them as `node.py` describes: tasks on an async LLM
many batches at once on the loop, any other step one batch at a time in its worker thread.
A step's outputs are passed on in input order; a routing step passes each batch only to the
successors its routing batch function picks, and records the decision (see `routing.py`).

Every finished batch is queued for the run's folder as it is passed on; a background thread
writes it (see `batch_writer.py`), so a run killed at any moment may lose the last batches it
had finished, never part of one. A later run reuses a stored batch only when it was computed
from the same input (each batch records the ids of the batches it was cut from) and none of
its rows failed; anything else is computed again, answered requests coming from the journal,
so every row appears exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Optional

from potstill.errors import PipelineRunError, PotstillUserError
from potstill.llms.base import describe_error
from potstill.llms.cache import run_scope
from potstill.llms.loading import loading_scope
from potstill.pipeline.dag import DAG
from potstill.pipeline.generators import GeneratorRun, Pacing
from potstill.pipeline.node import StepNode
from potstill.pipeline.progress import Progress
from potstill.pipeline.run_folder import RunFolder
from potstill.pipeline.step_batches import StepBatches
from potstill.steps.base import GeneratorStep
from potstill.utils.datasets_progress import import_in_background
from potstill.utils.gc_freeze import older_objects_frozen

__all__ = ["Engine", "PipelineRunError"]

logger = logging.getLogger("potstill.pipeline")


class Engine:
    """Runs the steps of a DAG to completion.

    Args:
        dag: the pipeline's steps.
        folder: the run's folder, where finished batches are written.
        step_batches: step name -> its stored batches.
        progress: the progress display.
        max_generator_batches: stop each generator after this many batches (a dry run).
        use_response_cache: let LLM requests go through the shared response cache too.
    """

    def __init__(
        self,
        dag: DAG,
        folder: RunFolder,
        step_batches: dict[str, StepBatches],
        progress: Progress,
        max_generator_batches: Optional[int] = None,
        use_response_cache: bool = False,
    ) -> None:
        self.dag = dag
        self.use_response_cache = use_response_cache
        self.folder = folder
        self.progress = progress
        self.max_generator_batches = max_generator_batches
        self.pacing = Pacing()
        self.nodes = {
            name: StepNode(self, dag.steps[name], step_batches[name]) for name in dag.steps
        }
        for name, node in self.nodes.items():
            node.successors = [self.nodes[s] for s in dag.successors(name)]
        self._tasks: set[asyncio.Task[Any]] = set()
        self._remaining = len(self.nodes)
        self._done: Optional[asyncio.Event] = None
        self._failure: Optional[BaseException] = None
        self.stopping = False  # see `stop`

    async def run(self) -> None:
        """Loads every step, runs the pipeline, unloads every step."""
        self._done = asyncio.Event()
        loop = asyncio.get_running_loop()
        # A write that fails (e.g. a column with mixed types) stops the run at once.
        self.folder.on_error = lambda error: _call_soon(loop, self.fail, error)
        await self._load_all()
        # Each LLM's identity is dumped once per run; full garbage collections skip the
        # objects from before the run.
        with run_scope(), older_objects_frozen():
            import_in_background()  # `datasets`, if the run deferred it (`datasets_progress`)
            await self._run_loaded()

    async def _run_loaded(self) -> None:
        assert self._done is not None
        try:
            for node in self.nodes.values():
                if isinstance(node.step, GeneratorStep):
                    self.spawn(GeneratorRun(self, node).run())
            await self._done.wait()
            if self._failure is not None:
                raise self._failure
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            await asyncio.to_thread(self.folder.flush)
            for node in self.nodes.values():
                if node.routing is not None:
                    node.routing.close()
            await self._unload_all()

    def spawn(self, coroutine: Any) -> None:
        """Runs `coroutine` as a task of the run (its failure stops the run)."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.fail(task.exception())  # type: ignore[arg-type]
        elif self.stopping:
            self._end_if_idle()

    def stop(self) -> None:
        """Stops the run gracefully (a spending limit was reached): no step starts a new
        batch, the batches in flight finish and are stored, then the run ends. What was not
        processed is left for the next run; no step is recorded as complete unless it is."""
        self.stopping = True
        self._end_if_idle()

    def _end_if_idle(self) -> None:
        if self._done is not None and not any(node.in_flight for node in self.nodes.values()):
            self._done.set()

    def fail(self, error: BaseException) -> None:
        """Stops the run with `error` (the first one wins)."""
        if self._failure is None:
            self._failure = error
        assert self._done is not None
        self._done.set()

    def node_finished(self) -> None:
        """Counts a finished step; the run ends when every step has finished."""
        self._remaining -= 1
        if self._remaining == 0:
            assert self._done is not None
            self._done.set()

    # -- loading -------------------------------------------------------------------------

    async def _load_all(self) -> None:
        steps = list(self.dag.steps.values())
        with loading_scope():  # an LLM shared by several steps loads once
            loads = [self.nodes[step.name].load() for step in steps]  # type: ignore[index]
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
                await node.unload()
            except Exception as error:  # unloading must not hide the run's outcome
                logger.warning("Step %r failed to unload: %s", node.name, describe_error(error))
            finally:
                node.worker.close()


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Any, *args: Any) -> None:
    """Schedules `callback` on `loop` from another thread (nothing once the loop is closed)."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)
