"""Which request errors are worth retrying, and how long to wait before the next attempt.

The rule is the same for every provider: rate limits (429), server errors (5xx), request
timeouts (408), conflicts (409), timeouts, connection errors and unparseable response bodies
are transient; anything else (bad request, auth, not found, validation) is not. A
`Retry-After` (or `retry-after-ms`) header sets the wait; otherwise it is exponential
backoff with full jitter.

A refused connection (nothing listens at the endpoint) is told apart from the rest: SDKs
report it as a generic connection error or even as a timeout (the `openai` SDK's aiohttp
transport says "Request timed out"), with the `ConnectionRefusedError` buried in the
exception's cause chain. It is transient too (a server may be starting), but it usually
means a wrong URL or a server that is not running, so the caller retries it only briefly.

SDK exceptions are recognised by their shape, not their class, so one rule covers every SDK:
a `status_code`/`status`/`code` attribute (or one on `.response`), response headers on
`.response.headers` or `.headers`, and exception class names that say "Timeout" or
"Connection".
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import errno
import json
import math
import random
import time
from dataclasses import dataclass
from typing import Any, Optional

_RETRYABLE_STATUS = frozenset({408, 409, 425, 429})
_TRANSIENT_NAMES = ("timeout", "connection", "connect", "disconnect", "protocol", "readerror")
# How deep to look into an exception's causes (SDK error -> transport error -> OS error).
_MAX_CHAIN = 12


@dataclass(frozen=True)
class RetryDecision:
    """What to do after a failed attempt.

    Attributes:
        retry: whether another attempt may succeed.
        wait: seconds the server asked us to wait (`Retry-After`), if it said.
        status: the HTTP status of the failure, when there was one.
        refused: the endpoint refused the connection (nothing listens there).
    """

    retry: bool
    wait: Optional[float] = None
    status: Optional[int] = None
    refused: bool = False


def classify(error: BaseException) -> RetryDecision:
    """Decides whether a failed request should be retried.

    Args:
        error: what the SDK raised.

    Returns:
        The decision, with the server's requested wait when it gave one.
    """
    status = status_code(error)
    wait = retry_after(error)
    if connection_refused(error):
        # Before the status: some SDKs (litellm) give a refused connection a made-up 500.
        return RetryDecision(True, wait, None, refused=True)
    if status is not None and status < 300:
        # A successful status on an error: the SDK could not parse the body (truncated or
        # garbled), which is as transient as a `JSONDecodeError`.
        return RetryDecision(True, wait, status)
    if status is not None:
        return RetryDecision(status in _RETRYABLE_STATUS or status >= 500, wait, status)
    return RetryDecision(_is_transient(error), wait, None)


def connection_refused(error: BaseException) -> bool:
    """Whether a failure is a refused connection, however the SDK wrapped it.

    Looks through the exception's causes (`__cause__`, `__context__`, exceptions among its
    `args`, aiohttp's `os_error`) for a `ConnectionRefusedError` or an `ECONNREFUSED` errno,
    and at their messages for "connection refused" (SDKs that flatten the cause into text).
    The message of an error with an HTTP status does not count: a server answered (a
    gateway's 502 may say that *its* upstream refused, which is worth the full retries).

    Args:
        error: what the SDK raised.

    Returns:
        True when the endpoint refused the connection.
    """
    for link in _causes(error):
        if isinstance(link, ConnectionRefusedError):
            return True
        if getattr(link, "errno", None) == errno.ECONNREFUSED:
            return True
        if status_code(link) is None and "connection refused" in _text(link).lower():
            return True
    return False


def _text(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:  # a broken `__str__` must not hide the original failure
        return ""


def _causes(error: BaseException) -> list[BaseException]:
    """The error and the exceptions it wraps, nearest first, each once."""
    found: list[BaseException] = []
    pending: list[BaseException] = [error]
    while pending and len(found) < _MAX_CHAIN:
        current = pending.pop(0)
        if any(current is seen for seen in found):
            continue
        found.append(current)
        linked = (current.__cause__, current.__context__, getattr(current, "os_error", None))
        pending.extend(item for item in (*linked, *current.args) if isinstance(item, BaseException))
    return found


def status_code(error: BaseException) -> Optional[int]:
    """The HTTP status carried by an SDK exception, if any."""
    for holder in (error, getattr(error, "response", None)):
        for name in ("status_code", "status", "code", "http_status"):
            value = getattr(holder, name, None)
            if isinstance(value, int) and 100 <= value <= 599:
                return value
    return None


def retry_after(error: BaseException) -> Optional[float]:
    """Seconds from a `retry-after-ms` or `Retry-After` header on the error's response.

    A header that is neither a number nor an HTTP date (`Retry-After: soon`), or that is
    not finite, counts as absent: the retry then waits the usual backoff.
    """
    headers = getattr(getattr(error, "response", None), "headers", None)
    if headers is None:
        headers = getattr(error, "headers", None)
    if headers is None:
        return None
    try:
        millis = headers.get("retry-after-ms")
        value = headers.get("retry-after")
    except Exception:
        return None
    seconds = _number(millis)
    if seconds is not None:
        return seconds / 1000
    seconds = _number(value)
    return seconds if seconds is not None else _seconds_until(value)


def _number(value: Any) -> Optional[float]:
    """A finite, non-negative number of a header value, or `None`."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return max(number, 0.0) if math.isfinite(number) else None


def _seconds_until(value: Any) -> Optional[float]:
    """Seconds from now until the HTTP date of a header value, or `None` if it is not one."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:  # `-0000`: UTC, with no claim about the sender's zone
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return max(moment.timestamp() - time.time(), 0.0)


def _is_transient(error: BaseException) -> bool:
    if isinstance(error, (asyncio.TimeoutError, TimeoutError, ConnectionError)):
        return True
    if isinstance(error, json.JSONDecodeError):  # a truncated or garbled response body
        return True
    names = [cls.__name__.lower() for cls in type(error).__mro__]
    if any(marker in name for name in names for marker in _TRANSIENT_NAMES):
        return True
    cause = error.__cause__ or error.__context__
    return cause is not None and cause is not error and _is_transient_cause(cause)


def _is_transient_cause(error: BaseException) -> bool:
    return isinstance(error, (asyncio.TimeoutError, TimeoutError, ConnectionError))


def backoff_delay(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with full jitter for retry number `attempt` (0 for the first).

    Args:
        attempt: how many retries happened before this one.
        base: the delay scale in seconds.
        cap: the largest delay in seconds.

    Returns:
        A random delay in `[0, min(cap, base * 2**attempt)]`.
    """
    return random.uniform(0, min(cap, base * (2**attempt)))


def describe(error: Any) -> str:
    """A short label of the failure for logs, e.g. `HTTP 429`, `ReadTimeout` or
    `connection refused`."""
    status = status_code(error)
    if status is not None:
        return f"HTTP {status}"
    return "connection refused" if connection_refused(error) else type(error).__name__
