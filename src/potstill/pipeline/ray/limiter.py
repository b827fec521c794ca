"""Limits that hold across every replica: one limiter actor per LLM, shared by the replicas.

An LLM's requests- and tokens-per-minute limits are the LLM's, not a replica's, so on Ray
each LLM instance of the pipeline (shared by its tasks, like in one process) gets one
`LimiterActor` holding the same pacers as `potstill.llms.limits.RateLimiter`. In each
replica, the LLM's limiter is replaced by a `SharedLimiter` that books its requests there:

- Booking does not wait in the actor: it returns when each request may start, as a wall-clock
  time (the same for every process of a machine, and NTP-close across machines, so how long
  the answer took to arrive does not shift the schedule), and the replica sleeps until then. The requests of a replica that wait at the same moment are
  booked in one call (a lease of as many slots as are waiting), so the actor sees at most
  one call per replica per round trip, whatever the rate.
- Token usage corrections (`settle`) ride along with the next booking.
- A 429 with `Retry-After` pauses every replica: the replica that got it tells the actor,
  which pauses its own schedule and tells every other replica of the LLM. The actor exists
  for that even without limits, when the LLM runs on more than one replica.

The actor is used only when a limit is set (or for the 429 pauses): an LLM without limits
sends its requests without a round trip to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, Optional

from potstill.llms.limits import MAX_COOLDOWN_S, RateLimiter, Reservation, estimate_tokens

Limits = tuple[Optional[float], Optional[float], Optional[float], Optional[float]]
"""Requests, tokens, input tokens and output tokens per minute, as `RateLimiter.configure`
takes them."""


def llm_limits(llm: Any) -> Limits:
    """The LLM's requests/tokens-per-minute fields."""
    return (
        llm.requests_per_minute,
        llm.tokens_per_minute,
        llm.input_tokens_per_minute,
        llm.output_tokens_per_minute,
    )


class LimiterActor:
    """The limits of one LLM for every replica that uses it (a Ray actor).

    Args:
        limits: the LLM's limits (`llm_limits`).
    """

    def __init__(self, limits: Limits) -> None:
        self._limiter = RateLimiter()
        self._limiter.configure(*limits)
        self._replicas: list[tuple[str, Any, str]] = []

    def register(self, replicas: list[tuple[str, Any]], key: str) -> None:
        """Adds replicas (actor id, handle) to tell about 429 pauses (`key`: the LLM within
        each replica)."""
        self._replicas.extend((actor_id, replica, key) for actor_id, replica in replicas)

    def book(
        self,
        requests: list[tuple[int, Optional[int]]],
        settled: list[tuple[int, int, Optional[int], Optional[int]]],
    ) -> list[tuple[float, int, int]]:
        """Books requests, after applying the usage of earlier ones.

        Args:
            requests: `(input tokens, output cap)` per request to book, in order.
            settled: `(booked input, booked output, real input, real output)` of requests
                answered since the last call.

        Returns:
            Per request: when it may start (`time.time()`), and the input and output tokens
            booked for it.
        """
        for booked_in, booked_out, real_in, real_out in settled:
            self._limiter.settle(Reservation(booked_in, booked_out), real_in, real_out)
        slots = []
        for input_tokens, cap in requests:
            delay, reservation = self._limiter.reserve(input_tokens, cap)
            start = time.time() + delay
            slots.append((start, reservation.input_tokens, reservation.output_tokens))
        return slots

    def cool_down(self, seconds: float, source: Optional[str] = None) -> None:
        """Pauses the schedule and every replica but `source` (an actor id; it paused
        already)."""
        self._limiter.cool_down(seconds)
        for actor_id, replica, key in self._replicas:
            if actor_id != source:
                replica.cool_down.remote(key, seconds)


class SharedLimiter:
    """The limiter of an LLM inside a replica: `RateLimiter`'s interface, the limits kept by
    the LLM's `LimiterActor` (see the module docstring).

    Args:
        actor: the LLM's limiter actor.
        limited: whether any limit is set (without one, only 429 pauses apply).
        replica: the replica's actor id (it is not told again about its own pauses).
    """

    def __init__(self, actor: Any, limited: bool, replica: str) -> None:
        self._actor = actor
        self._limited = limited
        self._replica = replica
        self._cooldown_until = 0.0
        self._waiting: list[tuple[tuple[int, Optional[int]], asyncio.Future[Any]]] = []
        self._settled: list[tuple[int, int, Optional[int], Optional[int]]] = []
        self._booking: Optional[asyncio.Task[None]] = None
        self._tokens = False

    def configure(self, *limits: Optional[float]) -> None:
        """The actor holds the limits; this only notes whether token limits need usage."""
        self._tokens = any(limits[1:])

    @property
    def active(self) -> bool:
        """Whether requests go through `acquire` (a limit is set, or a pause is on)."""
        return self._limited or self._cooldown_until > time.monotonic()

    async def acquire(self, input: Any, max_output_tokens: Optional[int]) -> Reservation:
        """Waits until the request may be sent under the LLM's limits, in every replica."""
        while True:
            reservation = Reservation(0, 0)
            if self._limited:
                tokens = estimate_tokens(input) if self._tokens else 0
                start, reservation = await self._book((tokens, max_output_tokens))
                delay = start - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            pause = self._cooldown_until - time.monotonic()
            if pause <= 0:
                return reservation
            # A pause began while the request waited: its slot is given up, and it books
            # a new one once the pause is over.
            await asyncio.sleep(pause)

    async def _book(self, request: tuple[int, Optional[int]]) -> tuple[float, Reservation]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((request, future))
        if self._booking is None:
            self._booking = asyncio.get_running_loop().create_task(self._book_waiting())
        return await future

    async def _book_waiting(self) -> None:
        """Books every waiting request, one actor call per round (see the module docs)."""
        try:
            while self._waiting:
                waiting, self._waiting = self._waiting, []
                settled, self._settled = self._settled, []
                try:
                    slots = await self._actor.book.remote([r for r, _ in waiting], settled)
                except Exception as error:  # delivered to each waiting request
                    for _, future in waiting:
                        if not future.done():
                            future.set_exception(error)
                    continue
                for (_, future), (start, booked_in, booked_out) in zip(waiting, slots):
                    if not future.done():
                        future.set_result((start, Reservation(booked_in, booked_out)))
        finally:
            self._booking = None

    def settle(
        self, reservation: Reservation, input_tokens: Optional[int], output_tokens: Optional[int]
    ) -> None:
        """Keeps the request's real usage for the next booking (token limits only)."""
        if self._tokens:
            self._settled.append(
                (reservation.input_tokens, reservation.output_tokens, input_tokens, output_tokens)
            )

    def cool_down(self, seconds: float) -> None:
        """Pauses this replica's requests and has the actor pause every other replica."""
        self.pause(seconds)
        with contextlib.suppress(Exception):
            self._actor.cool_down.remote(seconds, self._replica)

    def pause(self, seconds: float) -> None:
        """Pauses this replica's requests (a 429 seen here or by another replica)."""
        until = time.monotonic() + min(max(seconds, 0.0), MAX_COOLDOWN_S)
        self._cooldown_until = max(self._cooldown_until, until)
