"""A worker thread per synchronous step.

Each synchronous step (and each generator) gets a thread of its own that runs its calls one
after the other, in order. The event loop can queue the next batch while the current one
runs, so the thread never waits on a round trip through the loop; and a step is never called
from two threads at once, so steps and local models need not be thread-safe.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from typing import Any, Callable, Optional

_STOP = object()


class StepWorker:
    """Runs submitted calls in one dedicated thread, in submission order."""

    def __init__(self, name: str) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"potstill-step-{name}", daemon=True)
        self._started = False

    def submit(self, function: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Queues `function(*args)`; the returned future resolves on the calling loop.

        Args:
            function: what to run in the worker thread.
            *args: its arguments.

        Returns:
            A future for its result (or exception).
        """
        if not self._started:
            self._thread.start()
            self._started = True
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        context = contextvars.copy_context()
        self._queue.put((loop, future, context, function, args))
        return future

    def close(self) -> None:
        """Lets the thread finish what is queued and exit."""
        if self._started:
            self._queue.put(_STOP)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            loop, future, context, function, args = item
            if future.cancelled():
                continue
            try:
                result: Any = context.run(function, *args)
                error: Optional[BaseException] = None
            except BaseException as exc:  # delivered to the awaiting coroutine
                result, error = None, exc
            if not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, future, result, error)


def _resolve(future: asyncio.Future[Any], result: Any, error: Optional[BaseException]) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
