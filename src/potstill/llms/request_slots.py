"""`RequestSlots`: the limit behind `max_concurrent_requests`, one per LLM and event loop.

It does what `asyncio.Semaphore` does for the request path, at a constant cost per request:
on Python 3.11, `Semaphore.acquire` scans every waiting request each time (to skip cancelled
ones), which grows with the number of requests queued behind the limit. Here a freed slot is
handed straight to the oldest waiting request (first come, first served), and a request
cancelled while it waits gives up its place, or passes on the slot it was just handed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Generator
from typing import Any


class _Done:
    """An awaitable that is already done (awaiting it returns `None` at once)."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return iter(())  # type: ignore[return-value]


_DONE = _Done()


class RequestSlots:
    """At most `size` holders at once; `async with slots:` holds one.

    Args:
        size: how many may hold a slot at once.
    """

    __slots__ = ("_free", "_waiters")

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def free(self) -> int:
        """Slots nobody holds (0 while requests wait for one)."""
        return self._free

    def __aenter__(self) -> Awaitable[None]:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return _DONE  # no coroutine to make when a slot is free (the common case)
        return self._wait()

    async def _wait(self) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot just as it was cancelled: pass it on
            raise

    def __aexit__(self, *exc_info: Any) -> Awaitable[None]:
        self.release()
        return _DONE

    def release(self) -> None:
        """Frees a slot: the oldest waiting request gets it, else it is free."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():  # a cancelled waiter has given up its place
                waiter.set_result(None)
                return
        self._free += 1
