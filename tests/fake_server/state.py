"""Server configuration and request recording, shared between threads.

The server's event loop runs in a background thread while tests read from the
main thread, so every access goes through one lock. Timestamps come from
:func:`time.monotonic`.
"""

from __future__ import annotations

import bisect
import dataclasses
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .batch_jobs import BatchStore
from .behaviour import Fault
from .registry import ProviderRegistry

DEFAULT_API_KEY = "test-key"


@dataclass(frozen=True)
class ConfigSnapshot:
    """An immutable view of the server configuration.

    Attributes:
        latency_s: Seconds added to every provider request.
        faults: Server-wide faults, applied in order.
        seed: Seed of the deterministic fault draw.
        require_api_key: Key that clients must send, or None to accept anything.
        max_tokens_truncates: Whether ``max_tokens`` limits answer length.
        ignore_n: Answer one choice whatever ``n`` asks, like servers and proxies that
            ignore ``n``.
        extra_choices: Choices answered beyond what ``n`` asks (a server that returns
            ``n + 1``).
        echo_key_in_errors: Echo the credentials a request sent in the message of its 401
            (``Invalid credentials: Bearer sk-...``), like some servers do.
        batch_polls: Retrieves of a batch job (OpenAI Batches, Anthropic Message Batches)
            until it ends; 0 ends it at the first retrieve.
        batch_delay_s: Seconds after its creation before a batch job can end.
    """

    latency_s: float = 0.0
    faults: tuple[Fault, ...] = ()
    seed: int = 0
    require_api_key: str | None = DEFAULT_API_KEY
    max_tokens_truncates: bool = True
    ignore_n: bool = False
    extra_choices: int = 0
    echo_key_in_errors: bool = False
    batch_polls: int = 0
    batch_delay_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """Return the configuration as JSON-compatible data.

        Returns:
            A dict with every field; faults become dicts.
        """
        data = dataclasses.asdict(self)
        data["faults"] = [dataclasses.asdict(f) for f in self.faults]
        return data


CONFIG_FIELDS: frozenset[str] = frozenset(f.name for f in dataclasses.fields(ConfigSnapshot))


@dataclass(frozen=True)
class RecordedRequest:
    """One provider request as the server saw it.

    Attributes:
        provider: Provider name (``"unknown"`` for paths no provider serves).
        method: HTTP method.
        path: URL path.
        query: Query arguments (last value wins for repeated names).
        headers: Request headers with lower-cased names.
        body: Parsed JSON body, or None when empty or not JSON.
        start: Monotonic time the request reached the handler.
        end: Monotonic time the answer was ready (or the connection dropped).
        status: HTTP status returned, or None when the connection was dropped.
        attempt: Zero-based attempt index of the request's key content.
        outcome: ``ok``, ``empty``, ``status``, ``drop``, ``malformed``, ``auth`` (bad
            key), ``invalid`` (a 4xx before or from the handler) or ``cancelled``
            (server shut down mid-request).
    """

    provider: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    start: float
    end: float
    status: int | None
    attempt: int = 0
    outcome: str = "ok"

    @property
    def duration(self) -> float:
        """Seconds between start and end."""
        return self.end - self.start

    def to_json(self) -> dict[str, Any]:
        """Return the record as JSON-compatible data.

        Returns:
            A dict of every field.
        """
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class InFlight:
    """Token returned by :meth:`ServerState.begin_request`.

    Attributes:
        start: Monotonic start time.
        generation: Reset generation the request started in.
    """

    start: float
    generation: int


@dataclass
class _Recording:
    """Mutable recording data, guarded by the state's lock."""

    requests: list[RecordedRequest] = field(default_factory=list)
    request_times: list[float] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)
    peak_concurrency: int = 0


def _coerce(name: str, value: Any) -> Any:
    """Validate and normalise one configuration value.

    Args:
        name: The field name.
        value: The new value.

    Returns:
        The value to store.

    Raises:
        TypeError: If the value has the wrong type.
        ValueError: If the value is out of range.
    """
    if name == "faults":
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
            raise TypeError("faults must be a list of Fault objects or dicts")
        return tuple(Fault.from_value(item) for item in value)
    if name in ("latency_s", "batch_delay_s"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number")
        if value < 0:
            raise ValueError(f"{name} must be >= 0")
        return float(value)
    if name == "seed":
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("seed must be an int")
        return value
    if name in ("extra_choices", "batch_polls"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int")
        if value < 0:
            raise ValueError(f"{name} must be >= 0")
        return value
    if name == "require_api_key":
        if value is not None and not isinstance(value, str):
            raise TypeError("require_api_key must be a str or None")
        return value
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool")
    return value


class ServerState:
    """Configuration and recordings of one fake server.

    Attributes:
        providers: The provider plug-ins registered by the app.
        batches: Uploaded files and batch jobs; they live as long as the server (a client
            that restarts finds its jobs again) and :meth:`reset` clears them.
    """

    def __init__(self, **config: Any) -> None:
        """Create a state with default configuration.

        Args:
            **config: Initial configuration, as for :meth:`configure`.
        """
        self._lock = threading.Lock()
        self._config = ConfigSnapshot()
        self._recording = _Recording()
        self._in_flight = 0
        self._generation = 0
        self.providers = ProviderRegistry()
        self.batches = BatchStore()
        if config:
            self.configure(**config)

    # -- configuration -------------------------------------------------------------

    def configure(self, **kwargs: Any) -> None:
        """Update configuration fields.

        Args:
            **kwargs: Any of ``latency_s``, ``faults`` (``Fault`` objects or dicts),
                ``seed``, ``require_api_key``, ``max_tokens_truncates``, ``ignore_n``,
                ``extra_choices``, ``echo_key_in_errors``, ``batch_polls``, ``batch_delay_s``.

        Raises:
            TypeError: On an unknown field name or a value of the wrong type.
            ValueError: On an out-of-range value.
        """
        unknown = set(kwargs) - CONFIG_FIELDS
        if unknown:
            raise TypeError(f"Unknown config field(s): {sorted(unknown)}")
        changes = {name: _coerce(name, value) for name, value in kwargs.items()}
        with self._lock:
            self._config = dataclasses.replace(self._config, **changes)

    @property
    def config(self) -> ConfigSnapshot:
        """The current configuration."""
        with self._lock:
            return self._config

    @property
    def latency_s(self) -> float:
        """Seconds added to every provider request."""
        return self.config.latency_s

    @property
    def faults(self) -> list[Fault]:
        """A copy of the server-wide faults."""
        return list(self.config.faults)

    @property
    def seed(self) -> int:
        """Seed of the deterministic fault draw."""
        return self.config.seed

    @property
    def require_api_key(self) -> str | None:
        """Key clients must send, or None."""
        return self.config.require_api_key

    @property
    def max_tokens_truncates(self) -> bool:
        """Whether ``max_tokens`` limits answer length."""
        return self.config.max_tokens_truncates

    def reset(self) -> None:
        """Clear recordings, attempt counters, files and batch jobs, and restore the default
        configuration.

        Requests still in flight are not recorded when they finish.
        """
        with self._lock:
            self._config = ConfigSnapshot()
            self._recording = _Recording(peak_concurrency=self._in_flight)
            self._generation += 1
        self.batches.clear()

    # -- recording (called by the middleware) --------------------------------------

    def begin_request(self) -> InFlight:
        """Count a request as started and in flight.

        Returns:
            A token to pass to :meth:`finish_request`.
        """
        now = time.monotonic()
        with self._lock:
            self._in_flight += 1
            recording = self._recording
            recording.request_times.append(now)
            recording.peak_concurrency = max(recording.peak_concurrency, self._in_flight)
            return InFlight(start=now, generation=self._generation)

    def finish_request(self, token: InFlight, record: RecordedRequest | None) -> None:
        """Count a request as finished and store its record.

        Args:
            token: The token from :meth:`begin_request`.
            record: The record to store, or None to store nothing.
        """
        with self._lock:
            self._in_flight -= 1
            if record is not None and token.generation == self._generation:
                self._recording.requests.append(record)

    def next_attempt(self, content: str) -> int:
        """Return and advance the attempt index of a key content.

        Args:
            content: The key content (last user message text).

        Returns:
            How many earlier requests had this content (0 on first sight).
        """
        with self._lock:
            attempts = self._recording.attempts
            index = attempts.get(content, 0)
            attempts[content] = index + 1
            return index

    # -- reading (called by tests) -------------------------------------------------

    def attempts(self, content: str) -> int:
        """Return how many requests carried this key content.

        Args:
            content: The key content.

        Returns:
            The count.
        """
        with self._lock:
            return self._recording.attempts.get(content, 0)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the finished requests, in completion order."""
        with self._lock:
            return list(self._recording.requests)

    @property
    def request_count(self) -> int:
        """Number of provider requests started since the last reset."""
        with self._lock:
            return len(self._recording.request_times)

    @property
    def request_times(self) -> list[float]:
        """A copy of the request start times, in arrival order."""
        with self._lock:
            return list(self._recording.request_times)

    @property
    def in_flight(self) -> int:
        """Number of requests being handled right now."""
        with self._lock:
            return self._in_flight

    @property
    def peak_concurrency(self) -> int:
        """Most requests handled at the same moment since the last reset."""
        with self._lock:
            return self._recording.peak_concurrency

    def max_requests_in_window(self, window_s: float) -> int:
        """Return the most request starts inside any window of ``window_s`` seconds.

        Windows are half-open, ``[t, t + window_s)``.

        Args:
            window_s: Window length in seconds.

        Returns:
            The largest number of starts in one window (0 without requests).

        Raises:
            ValueError: If ``window_s`` is not positive.
        """
        if window_s <= 0:
            raise ValueError("window_s must be > 0")
        times = sorted(self.request_times)
        best = 0
        for i, start in enumerate(times):
            best = max(best, bisect.bisect_left(times, start + window_s, lo=i) - i)
        return best

    def stats(self, window_s: float | None = None) -> dict[str, Any]:
        """Return summary counters as JSON-compatible data.

        Args:
            window_s: When given, also compute :meth:`max_requests_in_window`.

        Returns:
            A dict with ``request_count``, ``completed``, ``in_flight``,
            ``peak_concurrency`` and optionally ``window_s`` and ``max_requests_in_window``.
        """
        with self._lock:
            data: dict[str, Any] = {
                "request_count": len(self._recording.request_times),
                "completed": len(self._recording.requests),
                "in_flight": self._in_flight,
                "peak_concurrency": self._recording.peak_concurrency,
            }
        if window_s is not None:
            data["window_s"] = window_s
            data["max_requests_in_window"] = self.max_requests_in_window(window_s)
        return data
