"""An AsyncLLM's SDK clients: one per event loop, closed however the LLM goes away.

Async SDK clients (and their connection pools) belong to the event loop they were created
on, and an AsyncLLM may be used from several: a pipeline's loop, the background loop behind
the synchronous `generate`, a notebook's loop. So each LLM keeps a `LoopState` per loop (its
client, and the semaphore behind `max_concurrent_requests`), created on first use. A client
is closed on its own loop:

- by `unload()` (`close_clients`);
- when the LLM is garbage-collected without `unload()` (a finalizer schedules the close on
  the client's loop, without blocking the collecting thread);
- at interpreter exit, for the clients still open on the background loop (the portal's
  shutdown hook).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import weakref
from typing import TYPE_CHECKING, Any, Optional

from potstill.llms.request_slots import RequestSlots
from potstill.utils.portal import portal

if TYPE_CHECKING:
    from potstill.llms.async_llm import AsyncLLM


class LoopState:
    """What an AsyncLLM keeps per event loop: its SDK client and its concurrency limit.

    Attributes:
        client: the SDK client, once created.
        finalizer: closes the client if the LLM is collected without `unload()`.
        limit: the `max_concurrent_requests` the semaphore was made for.
        semaphore: bounds the requests in flight on this loop (see `RequestSlots`).
    """

    def __init__(self) -> None:
        self.client: Any = None
        self.finalizer: Optional[weakref.finalize] = None
        self.limit = 0
        self.semaphore = RequestSlots(1)

    def detach_finalizer(self) -> None:
        """Cancels the close-on-collection of the client (it is closed explicitly)."""
        if self.finalizer is not None:
            self.finalizer.detach()
            self.finalizer = None

    def fit_limit(self, max_concurrent_requests: int) -> None:
        """Applies a changed `max_concurrent_requests` to the requests that start next."""
        if max_concurrent_requests != self.limit:
            self.limit = max_concurrent_requests
            self.semaphore = RequestSlots(max_concurrent_requests)


def loop_state(llm: AsyncLLM) -> LoopState:
    """The LLM's state for the running event loop (created on first use).

    Raises:
        RuntimeError: when no event loop is running.
    """
    loop = asyncio.get_running_loop()
    state = llm._loop_states.get(loop)
    if state is None:
        state = llm._loop_states[loop] = LoopState()
    state.fit_limit(llm.max_concurrent_requests or 1)
    return state


def client_for(llm: AsyncLLM) -> Any:
    """The LLM's SDK client for the running event loop, created on first use; without a
    running loop, a throwaway client (e.g. for inspection)."""
    try:
        state = loop_state(llm)
    except RuntimeError:
        return llm._create_client()
    if state.client is None:
        state.client = llm._create_client()
        _OPEN_LLMS[id(llm)] = llm
        # An LLM dropped without `unload()` still closes its client (and connections).
        state.finalizer = weakref.finalize(
            llm, _close_orphaned_client, asyncio.get_running_loop(), state.client
        )
        state.finalizer.atexit = False  # at exit, the portal's shutdown hook closes it
    return state.client


def close_clients(llm: AsyncLLM) -> None:
    """Closes every SDK client of the LLM, each on the event loop it belongs to."""
    states, llm._loop_states = llm._loop_states, weakref.WeakKeyDictionary()
    for loop, state in list(states.items()):
        state.detach_finalizer()
        if state.client is not None:
            _run_on_loop(loop, llm._aclose_client(state.client))
    _OPEN_LLMS.pop(id(llm), None)


async def close_client(client: Any) -> None:
    """Closes an SDK client through its `close()` or `aclose()` (sync or async), or, for a
    client that has neither (Cohere's, Mistral's), by leaving its async context."""
    close = getattr(client, "close", None) or getattr(client, "aclose", None)
    if close is None and hasattr(client, "__aexit__"):
        await client.__aexit__(None, None, None)
    elif close is not None:
        result = close()
        if inspect.isawaitable(result):
            await result


# LLMs with an open SDK client (weakly: a collected LLM closes its client in its finalizer).
_OPEN_LLMS: weakref.WeakValueDictionary[int, AsyncLLM] = weakref.WeakValueDictionary()
# Closes of collected LLMs' clients still running (a task must be referenced to finish).
_ORPHAN_CLOSES: set[asyncio.Task[Any]] = set()


async def _close_open_clients() -> None:
    """Closes the SDK clients still open on the portal loop when the interpreter exits."""
    for llm in list(_OPEN_LLMS.values()):
        state = llm._loop_states.get(asyncio.get_running_loop())
        if state is not None and state.client is not None:
            state.detach_finalizer()
            client, state.client = state.client, None
            with contextlib.suppress(Exception):
                await llm._aclose_client(client)


portal.on_shutdown(_close_open_clients)


def _run_on_loop(loop: asyncio.AbstractEventLoop, coroutine: Any) -> None:
    """Runs a cleanup coroutine on `loop`, from whatever thread we are on."""
    if loop.is_closed():
        coroutine.close()
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        loop.create_task(coroutine)
    elif loop.is_running():
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=10)
    else:
        coroutine.close()


def _close_orphaned_client(loop: asyncio.AbstractEventLoop, client: Any) -> None:
    """Closes, on its own loop and without blocking, the client of a collected AsyncLLM."""

    async def close_quietly() -> None:
        with contextlib.suppress(Exception):
            await close_client(client)

    def schedule() -> None:
        task = loop.create_task(close_quietly())
        _ORPHAN_CLOSES.add(task)
        task.add_done_callback(_ORPHAN_CLOSES.discard)

    if not loop.is_closed():
        with contextlib.suppress(RuntimeError):  # the loop closed in the meantime
            loop.call_soon_threadsafe(schedule)
