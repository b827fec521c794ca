"""Running coroutines from synchronous code.

potstill's sync entry points (`AsyncLLM.generate`, `Pipeline.run`) must work in a plain
script, inside a running event loop (Jupyter, pytest-asyncio) and from several threads at
once, without patching asyncio (`nest_asyncio`). They all hand their coroutine to one
long-lived event loop that runs in a background thread (the "portal") and block until it
finishes. Because every sync call uses the same loop, SDK clients and limiters created on
it stay valid from one call to the next.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

_T = TypeVar("_T")

_GRACE_PERIOD_S = 10.0


class _Portal:
    """A background thread running an asyncio event loop forever."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._shutdown_hooks: list[Callable[[], Coroutine[Any, Any, None]]] = []

    def on_shutdown(self, hook: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Registers a coroutine function to run on the loop before it stops at exit."""
        self._shutdown_hooks.append(hook)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The portal's event loop, started on first use."""
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                self._start()
            assert self._loop is not None
            return self._loop

    def in_portal_thread(self) -> bool:
        """Whether the caller runs on the portal's own thread."""
        return self._thread is not None and threading.current_thread() is self._thread

    def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Runs `coro` on the portal loop and waits for its result.

        Args:
            coro: the coroutine to run.

        Returns:
            What the coroutine returns.

        Raises:
            RuntimeError: when called from a coroutine running on the portal loop itself,
                where blocking would deadlock; such code must `await` instead.
        """
        if self.in_portal_thread():
            coro.close()
            raise RuntimeError(
                "A synchronous potstill call (e.g. `LLM.generate` or `Pipeline.run`) was made "
                "from a coroutine running on potstill's own event loop, which would deadlock. "
                "Await the async variant instead (e.g. `await llm.agenerate_outputs(...)`)."
            )
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            # KeyboardInterrupt (or any other interruption of the waiting thread): cancel the
            # coroutine and give it a moment to clean up (flush stored batches, close files).
            if not future.done():
                future.cancel()
                concurrent.futures.wait([future], timeout=_GRACE_PERIOD_S)
            raise

    def _start(self) -> None:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run_forever() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        thread = threading.Thread(target=run_forever, name="potstill-event-loop", daemon=True)
        thread.start()
        ready.wait()
        self._loop, self._thread = loop, thread

    def shutdown(self) -> None:
        """Stops the loop (used at interpreter exit)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None or loop.is_closed():
            return
        for hook in self._shutdown_hooks:
            future = asyncio.run_coroutine_threadsafe(hook(), loop)
            try:
                future.result(timeout=_GRACE_PERIOD_S)
            except Exception:  # best effort at interpreter exit
                future.cancel()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=_GRACE_PERIOD_S)
        if not thread.is_alive():
            loop.close()


portal = _Portal()
atexit.register(portal.shutdown)


def run_sync(coro: Coroutine[Any, Any, _T]) -> _T:
    """Runs a coroutine to completion from synchronous code, wherever that code runs.

    Args:
        coro: the coroutine to run.

    Returns:
        What the coroutine returns.
    """
    return portal.run(coro)
