"""Rate limits for one LLM instance: requests and tokens per minute, plus a 429 cooldown.

Each limit is a pacer (the "virtual scheduling" form of a leaky bucket): a request may be sent
once the limit's schedule reaches it, and sending moves the schedule on by its cost in time
(`cost * 60 / per_minute`). Sends are spread evenly, so no window of any length sees more than
the limit allows (plus the request at its edge), and a long run gets the full rate. Requests
are released one at a time and booked when they are released, right before they are sent.

Token limits need the request's tokens before it is sent: input tokens are estimated from the
text (about 4 characters per token), output tokens from the running average of past answers
(or `max_new_tokens`). When the provider reports the real usage, the schedule is corrected by
the difference, so estimates never let the long-run rate exceed the limit.

All state is plain numbers under a thread lock, so the limits hold across every task, thread
and event loop that uses the same LLM instance.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Optional

_CHARS_PER_TOKEN = 4
_CATCH_UP_S = 0.01
_DEFAULT_OUTPUT_ESTIMATE = 256
_AVERAGE_WINDOW = 50
MAX_COOLDOWN_S = 30.0
"""The longest a 429's `Retry-After` pauses the *other* requests of an LLM instance."""


class _Pacer:
    """Spreads units (requests or tokens) evenly at `per_minute` units per minute."""

    def __init__(self, per_minute: float) -> None:
        self.per_minute = per_minute
        self._next = 0.0  # when the next unit may start (time.monotonic)

    @property
    def next_start(self) -> float:
        """When the next units may start (in the past when the limit has room)."""
        return self._next

    def book(self, start: float, units: float) -> None:
        """Records `units` starting at `start`; the next start moves on by their cost."""
        self._next = start + units * 60.0 / self.per_minute

    def correct(self, units: float) -> None:
        """Moves the schedule by `units` (the real cost minus the estimate)."""
        self._next += units * 60.0 / self.per_minute


@dataclass
class Reservation:
    """What one request booked, so it can be corrected with the real usage."""

    input_tokens: int
    output_tokens: int


class RateLimiter:
    """Requests-per-minute and tokens-per-minute limits plus a shared 429 cooldown."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pacers: dict[str, _Pacer] = {}
        self._cooldown_until = 0.0
        self._recent_outputs: list[int] = []
        self._gates: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()

    def configure(
        self,
        requests_per_minute: Optional[float],
        tokens_per_minute: Optional[float],
        input_tokens_per_minute: Optional[float],
        output_tokens_per_minute: Optional[float],
    ) -> None:
        """Applies the current limits (`None` turns a limit off); keeps schedules that stay."""
        wanted = {
            "requests": requests_per_minute,
            "tokens": tokens_per_minute,
            "input": input_tokens_per_minute,
            "output": output_tokens_per_minute,
        }
        with self._lock:
            for name, limit in wanted.items():
                pacer = self._pacers.get(name)
                if not limit:
                    self._pacers.pop(name, None)
                elif pacer is None or pacer.per_minute != limit:
                    self._pacers[name] = _Pacer(limit)

    @property
    def active(self) -> bool:
        """Whether any limit or cooldown applies."""
        return bool(self._pacers) or self._cooldown_until > time.monotonic()

    async def acquire(self, input: Any, max_output_tokens: Optional[int]) -> Reservation:
        """Waits until the request may be sent under every limit, then books it.

        Requests pass one at a time and are booked at the moment they are released, so a
        stalled event loop cannot release a burst of requests that were due meanwhile.

        Args:
            input: the conversation (for estimating input tokens).
            max_output_tokens: the request's output cap, if known.

        Returns:
            The reservation, to `settle` with the real usage.
        """
        reservation = self._reservation(
            estimate_tokens(input) if self._needs_tokens() else 0, max_output_tokens
        )
        async with self._gate():
            while True:
                with self._lock:
                    now = time.monotonic()
                    ready = self._ready()
                    if ready <= now:
                        self._book(ready, now, reservation)
                        return reservation
                await asyncio.sleep(ready - now)

    def reserve(
        self, input_tokens: int, max_output_tokens: Optional[int]
    ) -> tuple[float, Reservation]:
        """Books one request at the first moment every limit allows, without waiting: the
        form a limiter shared by several processes uses (the caller waits).

        Args:
            input_tokens: the request's estimated input tokens (`estimate_tokens`).
            max_output_tokens: the request's output cap, if known.

        Returns:
            The seconds from now until the request may be sent, and the reservation.
        """
        reservation = self._reservation(input_tokens, max_output_tokens)
        with self._lock:
            now = time.monotonic()
            ready = self._ready()
            return self._book(ready, now, reservation) - now, reservation

    def _reservation(self, input_tokens: int, max_output_tokens: Optional[int]) -> Reservation:
        return Reservation(
            input_tokens=input_tokens if self._needs_tokens() else 0,
            output_tokens=self._estimate_output(max_output_tokens),
        )

    def _ready(self) -> float:
        """When the next request may start under every limit (hold `_lock`)."""
        return max([self._cooldown_until, *(p.next_start for p in self._pacers.values())])

    def _book(self, ready: float, now: float, reservation: Reservation) -> float:
        """Books a request at `ready`, or now when that has passed; returns when it starts
        (hold `_lock`)."""
        # Waking a little late (timer resolution, a busy loop) keeps the cadence; after a
        # longer stall the schedule restarts from now, so the requests that were due are not
        # released in a burst.
        booked = ready if ready > now or now - ready <= _CATCH_UP_S else now
        costs = {
            "requests": 1,
            "tokens": reservation.input_tokens + reservation.output_tokens,
            "input": reservation.input_tokens,
            "output": reservation.output_tokens,
        }
        for name, pacer in self._pacers.items():
            pacer.book(booked, costs[name])
        return booked

    def _gate(self) -> asyncio.Lock:
        """The lock that lets one request at a time through, per event loop."""
        loop = asyncio.get_running_loop()
        with self._lock:
            gate = self._gates.get(loop)
            if gate is None:
                gate = self._gates[loop] = asyncio.Lock()
            return gate

    def settle(
        self, reservation: Reservation, input_tokens: Optional[int], output_tokens: Optional[int]
    ) -> None:
        """Corrects token schedules with the usage the provider reported."""
        with self._lock:
            if output_tokens is not None:
                self._recent_outputs.append(output_tokens)
                del self._recent_outputs[:-_AVERAGE_WINDOW]
            extra_in = (input_tokens - reservation.input_tokens) if input_tokens is not None else 0
            extra_out = (
                (output_tokens - reservation.output_tokens) if output_tokens is not None else 0
            )
            for name, extra in (
                ("tokens", extra_in + extra_out),
                ("input", extra_in),
                ("output", extra_out),
            ):
                pacer = self._pacers.get(name)
                if pacer is not None and extra:
                    pacer.correct(extra)

    def cool_down(self, seconds: float) -> None:
        """Pauses every request of this LLM for `seconds` (after a 429 with Retry-After),
        at most `MAX_COOLDOWN_S`: one answer asking for an hour must not stop the run."""
        pause = min(max(seconds, 0.0), MAX_COOLDOWN_S)
        with self._lock:
            self._cooldown_until = max(self._cooldown_until, time.monotonic() + pause)

    def _needs_tokens(self) -> bool:
        return any(name in self._pacers for name in ("tokens", "input"))

    def _estimate_output(self, max_output_tokens: Optional[int]) -> int:
        if not any(name in self._pacers for name in ("tokens", "output")):
            return 0
        with self._lock:
            recent = list(self._recent_outputs)
        if recent:
            return round(sum(recent) / len(recent))
        return max_output_tokens or _DEFAULT_OUTPUT_ESTIMATE


def estimate_tokens(input: Any) -> int:
    """A rough token count of a conversation (about 4 characters per token)."""
    if isinstance(input, str):
        return max(1, len(input) // _CHARS_PER_TOKEN)
    total = 0
    for message in input or []:
        content = message.get("content") if isinstance(message, dict) else message
        text = content if isinstance(content, str) else str(content)
        total += len(text) // _CHARS_PER_TOKEN + 4  # per-message overhead
    return max(total, 1)
