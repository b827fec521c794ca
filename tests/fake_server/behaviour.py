"""Per-request behaviour: delays, error statuses, dropped connections, bad bodies.

The decision for one request comes from two sources:

* markers inside the request's key content (the last user message), see
  :mod:`tests.fake_server.markers`;
* the server-wide list of :class:`Fault` objects, applied with a deterministic
  pseudo-random draw so the n-th attempt of a given content always gets the
  same decision, however requests interleave.

Marker outcomes take precedence over global faults.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

from .markers import Marker, parse_markers

FaultKind = Literal["status", "drop", "malformed", "slow"]
FAULT_KINDS: tuple[str, ...] = ("status", "drop", "malformed", "slow")


class MarkerError(ValueError):
    """A marker has a value that cannot be interpreted."""


@dataclass(frozen=True)
class Fault:
    """A server-wide fault injected into a share of the requests.

    Attributes:
        status: HTTP status answered when ``kind`` is ``"status"``.
        ratio: Share of requests (0..1) hit by this fault. Ratios of several faults
            are cumulative: they cover consecutive slices of [0, 1).
        retry_after: Seconds sent in a ``Retry-After`` header, if any (a string is sent
            as it is, e.g. ``"soon"`` for a malformed header).
        kind: ``"status"`` (error response), ``"drop"`` (close the connection),
            ``"malformed"`` (200 with a non-JSON body) or ``"slow"`` (succeed after
            ``delay_s``).
        delay_s: Extra delay before answering, for every kind.
    """

    status: int
    ratio: float
    retry_after: float | str | None = None
    kind: FaultKind = "status"
    delay_s: float = 0

    def __post_init__(self) -> None:
        """Validate the field values.

        Raises:
            ValueError: If the ratio, kind or delay is out of range.
        """
        if not 0.0 <= self.ratio <= 1.0:
            raise ValueError(f"Fault ratio must be within [0, 1], got {self.ratio}")
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"Fault kind must be one of {FAULT_KINDS}, got {self.kind!r}")
        if self.delay_s < 0:
            raise ValueError(f"Fault delay_s must be >= 0, got {self.delay_s}")

    @classmethod
    def from_value(cls, value: Fault | Mapping[str, Any]) -> Fault:
        """Build a fault from a ``Fault`` or a mapping of its fields.

        Args:
            value: A ``Fault`` (returned as is) or a dict such as ``{"status": 503, "ratio": 0.1}``.

        Returns:
            The fault.

        Raises:
            TypeError: If ``value`` is neither, or the mapping has unknown keys.
        """
        if isinstance(value, Fault):
            return value
        if isinstance(value, Mapping):
            known = {f.name for f in fields(cls)}
            unknown = set(value) - known
            if unknown:
                raise TypeError(f"Unknown Fault field(s): {sorted(unknown)}")
            return cls(**dict(value))
        raise TypeError(f"Expected a Fault or a mapping, got {type(value).__name__}")


@dataclass(frozen=True)
class Decision:
    """What the server does with one request.

    Attributes:
        delay_s: Seconds to wait before answering (on top of the global latency).
        status: Error status to answer with, or None to succeed.
        retry_after: Seconds for the ``Retry-After`` header of an error (a string is sent
            as it is), or None.
        drop: Close the connection without answering.
        malformed: Answer 200 with a body that is not valid JSON.
        empty: Answer 200 with a valid body whose message content is null.
        source: ``"marker"``, ``"fault"`` or ``"none"``: where the failure came from.
    """

    delay_s: float = 0.0
    status: int | None = None
    retry_after: float | str | None = None
    drop: bool = False
    malformed: bool = False
    empty: bool = False
    source: str = "none"

    @property
    def outcome(self) -> str:
        """Short label of the outcome: drop, status, malformed, empty or ok."""
        if self.drop:
            return "drop"
        if self.status is not None:
            return "status"
        if self.malformed:
            return "malformed"
        if self.empty:
            return "empty"
        return "ok"


def fault_draw(seed: int, content: str, attempt: int) -> float:
    """Map (seed, content, attempt) to a deterministic number in [0, 1).

    Args:
        seed: The server seed.
        content: The request's key content.
        attempt: Zero-based attempt index of this content.

    Returns:
        A float in [0, 1) derived from a SHA-256 digest.
    """
    digest = hashlib.sha256(f"{seed}\x00{attempt}\x00{content}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def pick_fault(faults: Sequence[Fault], draw: float) -> Fault | None:
    """Return the first fault whose cumulative ratio covers ``draw``.

    Args:
        faults: The configured faults, in order.
        draw: A number in [0, 1).

    Returns:
        The chosen fault, or None when the draw falls past every ratio.
    """
    cumulative = 0.0
    for fault in faults:
        cumulative += fault.ratio
        if draw < cumulative:
            return fault
    return None


def _number(marker: Marker, raw: str | None, what: str) -> float:
    """Parse a non-negative number from a marker.

    Args:
        marker: The marker, for the error message.
        raw: The text to parse.
        what: Name of the value, for the error message.

    Returns:
        The parsed number.

    Raises:
        MarkerError: If ``raw`` is missing, not a number or negative.
    """
    try:
        value = float(raw) if raw is not None else float("nan")
    except ValueError:
        value = float("nan")
    if not value >= 0:
        raise MarkerError(f"Marker [[{marker.name}]] needs a non-negative number for {what}")
    return value


def _status(marker: Marker, raw: str | None) -> int:
    """Parse an HTTP error status from a marker.

    Args:
        marker: The marker, for the error message.
        raw: The text to parse.

    Returns:
        The status code.

    Raises:
        MarkerError: If ``raw`` is not an integer within 400..599.
    """
    try:
        status = int(raw) if raw is not None else 0
    except ValueError:
        status = 0
    if not 400 <= status <= 599:
        raise MarkerError(f"Marker [[{marker.name}]] needs an error status in 400..599")
    return status


def _retry_after(marker: Marker) -> float | str | None:
    """Read the optional ``retry_after`` option of a marker.

    Args:
        marker: The marker.

    Returns:
        Seconds; the text as it is when it is not a number (``retry_after=soon`` sends a
        malformed header); None when the option is absent.
    """
    raw = marker.options.get("retry_after")
    if raw is None:
        return None
    try:
        float(raw)
    except ValueError:
        if raw:
            return raw
    return _number(marker, raw, "retry_after")


def decide_from_markers(markers: Sequence[Marker], attempt: int) -> Decision:
    """Turn markers into a decision, ignoring unknown marker names.

    Args:
        markers: Markers found in the key content.
        attempt: Zero-based attempt index of this content (for ``fail_first``).

    Returns:
        The decision; ``source`` is ``"marker"`` when a marker forces a failure.

    Raises:
        MarkerError: If a known marker has an invalid value.
    """
    delay = 0.0
    status: int | None = None
    retry_after: float | str | None = None
    drop = malformed = empty = False
    for marker in markers:
        if marker.name == "delay":
            delay += _number(marker, marker.value, "delay")
        elif marker.name == "status" and status is None:
            status = _status(marker, marker.value)
            retry_after = _retry_after(marker)
        elif marker.name == "fail_first":
            count = int(_number(marker, marker.value, "fail_first"))
            failing_status = _status(marker, marker.options.get("status", "500"))
            if attempt < count and status is None:
                status = failing_status
                retry_after = _retry_after(marker)
        elif marker.name == "drop":
            drop = True
        elif marker.name == "malformed":
            malformed = True
        elif marker.name == "empty":
            empty = True
    failing = drop or status is not None or malformed
    return Decision(
        delay_s=delay,
        status=None if drop else status,
        retry_after=None if drop else retry_after,
        drop=drop,
        malformed=malformed and not drop and status is None,
        empty=empty,
        source="marker" if failing else "none",
    )


def apply_fault(decision: Decision, fault: Fault) -> Decision:
    """Combine a marker decision (without failure) with a global fault.

    Args:
        decision: The decision from markers; must not already fail.
        fault: The fault drawn for this request.

    Returns:
        The combined decision.
    """
    delay = decision.delay_s + fault.delay_s
    if fault.kind == "slow":
        return Decision(delay_s=delay, empty=decision.empty)
    return Decision(
        delay_s=delay,
        status=fault.status if fault.kind == "status" else None,
        retry_after=fault.retry_after if fault.kind == "status" else None,
        drop=fault.kind == "drop",
        malformed=fault.kind == "malformed",
        empty=decision.empty,
        source="fault",
    )


def decide(content: str, attempt: int, faults: Sequence[Fault], seed: int) -> Decision:
    """Decide what to do with one request.

    Args:
        content: The request's key content (last user message text, markers included).
        attempt: Zero-based index of this request among those with the same content.
        faults: The server-wide faults.
        seed: The server seed for the deterministic fault draw.

    Returns:
        The decision.

    Raises:
        MarkerError: If a known marker has an invalid value.
    """
    decision = decide_from_markers(parse_markers(content), attempt)
    if decision.source == "marker" or not faults:
        return decision
    fault = pick_fault(faults, fault_draw(seed, content, attempt))
    return decision if fault is None else apply_fault(decision, fault)
