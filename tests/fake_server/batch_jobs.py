"""Batch jobs and uploaded files, shared by OpenAI's Batches API (``openai_batches``) and
Anthropic's Message Batches API (``anthropic_batches``).

A job does no work in the background. Each time a client looks at it (a retrieve counts
as a poll; a cancel, a list or a results download looks without polling) it processes the
requests that are due, answering each one as an online request with the same body would
be answered, and it ends once both the ``batch_polls`` and the ``batch_delay_s`` settings
the server had when the job was created are reached:

* progress = min(polls / batch_polls, seconds since creation / batch_delay_s), a setting
  of 0 counting as reached; the first ``floor(progress * n)`` requests are processed;
* failure markers in a request's prompt (``[[status=500]]``, ``[[fail_first=1]]``,
  ``[[drop]]``, ``[[malformed]]``) make that request fail inside the job (``drop`` and
  ``malformed`` as a 500); ``[[empty]]`` answers with no content; ``[[delay=...]]`` is
  ignored; the attempt counters are those of online requests, so ``fail_first`` counts
  batch and online attempts of the same prompt together;
* ``[[batch_expire]]`` in a request's prompt: the job never reaches that request and
  expires when it would have ended; that request and the later ones are expired;
* a cancel freezes the job; the next look ends it, the unprocessed requests cancelled.

Results come back in a deterministic order that is not the input order (as the real
APIs warn), so clients must match them by ``custom_id``.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from .behaviour import Decision, MarkerError, decide
from .markers import parse_markers

Outcome = Literal["succeeded", "errored", "expired", "canceled"]
Ending = Literal["completed", "expired", "cancelled", "failed"]
EXPIRE_MARKER = "batch_expire"
# Both APIs let a job run for 24 hours before it expires.
COMPLETION_WINDOW_S = 24 * 3600

Item = TypeVar("Item")


def new_id(prefix: str) -> str:
    """Make a random object id.

    Args:
        prefix: The id's prefix, e.g. ``"batch_"``.

    Returns:
        The prefix followed by 24 hex digits.
    """
    return f"{prefix}{uuid.uuid4().hex[:24]}"


@dataclass(frozen=True)
class StoredFile:
    """A file uploaded by a client or written by a batch job.

    Attributes:
        id: The file id (``file-...``).
        filename: The name it was uploaded (or written) under.
        purpose: ``batch``, ``batch_output``...
        data: The content.
        created_at: Unix time of the upload.
    """

    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int


@dataclass(frozen=True)
class BatchRequest:
    """One request of a batch job.

    Attributes:
        custom_id: The client's id of the request.
        body: The request body (an OpenAI chat body, Anthropic's ``params``).
        key_text: Its last user message text, markers included.
    """

    custom_id: str
    body: Any
    key_text: str


@dataclass(frozen=True)
class ItemResult:
    """What became of one request of a job.

    Attributes:
        outcome: ``succeeded``, ``errored``, ``expired`` or ``canceled``.
        status: The HTTP status of a processed request (200, or the error's), else None.
        body: The answer, or the provider's error body, of a processed request.
    """

    outcome: Outcome
    status: int | None = None
    body: Any = None


@dataclass(frozen=True)
class Refusal:
    """A request that a failure marker makes fail inside a job.

    Attributes:
        status: The HTTP status of the failure.
        message: The error message.
    """

    status: int
    message: str


def decide_request(key_text: str, attempt: int) -> Decision | Refusal:
    """Read the markers of a batch request.

    Args:
        key_text: The request's last user message text, markers included.
        attempt: Zero-based attempt index of that text (for ``fail_first``).

    Returns:
        The decision for a request to answer, or the refusal of one that fails.
    """
    try:
        decision = decide(key_text, attempt, (), 0)
    except MarkerError as exc:
        return Refusal(400, f"Invalid fake-server marker: {exc}")
    if decision.status is not None:
        return Refusal(
            decision.status, f"Simulated error {decision.status} from the fake server (marker)."
        )
    if decision.drop or decision.malformed:
        return Refusal(500, "Simulated server error from the fake server (marker).")
    return decision


def expire_index(requests: Sequence[BatchRequest]) -> int | None:
    """Find the first request whose prompt carries ``[[batch_expire]]``.

    Args:
        requests: The job's requests, in order.

    Returns:
        Its index, or None.
    """
    for index, request in enumerate(requests):
        if any(marker.name == EXPIRE_MARKER for marker in parse_markers(request.key_text)):
            return index
    return None


@dataclass
class BatchJob:
    """One batch job and how far it got.

    Attributes:
        id: The job id.
        provider: ``openai`` or ``anthropic``.
        requests: The requests, in input order.
        polls_needed: Retrieves until the job ends (``batch_polls`` at creation).
        delay_s: Seconds after creation before it can end (``batch_delay_s`` at creation).
        seed: The server seed at creation, which orders the results.
        details: Provider data (input file, endpoint, metadata, result file ids...).
        created_at: Unix time of creation.
        polls: Retrieves so far.
        results: The result of each request, None while unprocessed.
        cancelled_at: Unix time of the cancel request, or None.
        ended_at: Unix time the job ended, or None.
        ending: How it ended, or None while running.
        errors: Why a job ``failed`` (provider error objects).
    """

    id: str
    provider: str
    requests: list[BatchRequest]
    polls_needed: int
    delay_s: float
    seed: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    polls: int = 0
    results: list[ItemResult | None] = field(default_factory=list)
    cancelled_at: float | None = None
    ended_at: float | None = None
    ending: Ending | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    _started: float = field(default_factory=time.monotonic, repr=False)
    _expire_at: int | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        """Start with every request unprocessed."""
        self.results = [None] * len(self.requests)
        self._expire_at = expire_index(self.requests)

    @property
    def ended(self) -> bool:
        """Whether the job has ended (completed, expired, cancelled or failed)."""
        return self.ending is not None

    @property
    def finalizing(self) -> bool:
        """Whether the job is running its last poll(s) before it ends."""
        return not self.ended and self.polls_needed >= 2 and self.polls >= self.polls_needed - 1

    def progress(self) -> float:
        """How far the job got, from 0 to 1 (see the module docstring)."""
        by_polls = 1.0 if self.polls_needed == 0 else self.polls / self.polls_needed
        elapsed = time.monotonic() - self._started
        by_time = 1.0 if self.delay_s == 0 else elapsed / self.delay_s
        return min(1.0, by_polls, by_time)

    def advance(self, answer: Callable[[BatchRequest], ItemResult]) -> None:
        """Process the requests that are due and end the job when its time has come.

        Args:
            answer: Answers one request.
        """
        if self.ended:
            return
        if self.cancelled_at is not None:
            self._end("cancelled", "canceled")
            return
        progress = self.progress()
        due = len(self.requests) if progress >= 1.0 else math.floor(progress * len(self.requests))
        if self._expire_at is not None:
            due = min(due, self._expire_at)
        for index in range(due):
            if self.results[index] is None:
                self.results[index] = answer(self.requests[index])
        if progress >= 1.0:
            # every request was processed unless one of them made the job expire
            self._end("completed" if self._expire_at is None else "expired", "expired")

    def cancel(self) -> bool:
        """Ask the job to stop; the next :meth:`advance` ends it.

        Returns:
            False when the job had already ended (nothing to cancel).
        """
        if self.ended:
            return False
        if self.cancelled_at is None:
            self.cancelled_at = time.time()
        return True

    def fail(self, errors: list[dict[str, Any]]) -> None:
        """End the job before any processing (its input was invalid).

        Args:
            errors: The provider's error objects.
        """
        self.errors = list(errors)
        self.ending = "failed"
        self.ended_at = time.time()

    def _end(self, ending: Ending, unprocessed: Outcome) -> None:
        """End the job, giving every unprocessed request the same outcome.

        Args:
            ending: How the job ended.
            unprocessed: The outcome of the requests never processed.
        """
        self.results = [r if r is not None else ItemResult(unprocessed) for r in self.results]
        self.ending = ending
        self.ended_at = time.time()

    def counts(self) -> Counter[str]:
        """Count the results by outcome (unprocessed requests are not counted).

        Returns:
            Outcome -> count.
        """
        return Counter(result.outcome for result in self.results if result is not None)

    def finished_results(self) -> list[tuple[BatchRequest, ItemResult]]:
        """The results so far, in the order the provider returns them (not the input order).

        Returns:
            (request, result) pairs of the processed or ended requests.
        """
        pairs = [
            (request, result)
            for request, result in zip(self.requests, self.results)
            if result is not None
        ]
        return sorted(pairs, key=lambda pair: _shuffle_key(self.seed, pair[0].custom_id))


def _shuffle_key(seed: int, custom_id: str) -> bytes:
    """A sort key that orders results deterministically but not by input position.

    Args:
        seed: The server seed.
        custom_id: The request's id.

    Returns:
        A digest of both.
    """
    return hashlib.sha256(f"{seed}\x00{custom_id}".encode()).digest()


def cursor_page(
    items: Sequence[Item],
    key: Callable[[Item], str],
    limit: int,
    *,
    after: str | None = None,
    before: str | None = None,
) -> tuple[list[Item], bool]:
    """One page of a list, cut at an object id like the providers' list endpoints.

    Args:
        items: Every item, in the order the list returns them.
        key: The id of an item.
        limit: The most items on the page.
        after: Start right after the item with this id.
        before: End right before the item with this id.

    Returns:
        The page, and whether more items lie beyond it (in its direction).
    """
    ids = [key(item) for item in items]
    if before is not None:
        end = ids.index(before) if before in ids else 0
        start = max(0, end - limit)
        return list(items[start:end]), start > 0
    start = ids.index(after) + 1 if after in ids else 0
    page = list(items[start : start + limit])
    return page, start + limit < len(items)


class BatchStore:
    """The files and batch jobs of one server, safe to read from another thread.

    Handlers change jobs inside :meth:`locked`.
    """

    def __init__(self) -> None:
        """Start empty."""
        self._lock = threading.RLock()
        self._files: dict[str, StoredFile] = {}
        self._jobs: dict[str, BatchJob] = {}

    @contextmanager
    def locked(self) -> Iterator[BatchStore]:
        """Hold the store's lock.

        Yields:
            The store.
        """
        with self._lock:
            yield self

    def clear(self) -> None:
        """Forget every file and job."""
        with self._lock:
            self._files.clear()
            self._jobs.clear()

    def add_file(self, stored: StoredFile) -> None:
        """Store a file.

        Args:
            stored: The file.
        """
        with self._lock:
            self._files[stored.id] = stored

    def file(self, file_id: str) -> StoredFile | None:
        """Find a file.

        Args:
            file_id: Its id.

        Returns:
            The file, or None.
        """
        with self._lock:
            return self._files.get(file_id)

    def delete_file(self, file_id: str) -> bool:
        """Delete a file.

        Args:
            file_id: Its id.

        Returns:
            Whether it existed.
        """
        with self._lock:
            return self._files.pop(file_id, None) is not None

    def files(self) -> list[StoredFile]:
        """Every file, newest first."""
        with self._lock:
            return list(reversed(self._files.values()))

    def add_job(self, job: BatchJob) -> None:
        """Store a job.

        Args:
            job: The job.
        """
        with self._lock:
            self._jobs[job.id] = job

    def job(self, job_id: str, provider: str) -> BatchJob | None:
        """Find a job of a provider.

        Args:
            job_id: Its id.
            provider: The provider that must own it.

        Returns:
            The job, or None.
        """
        with self._lock:
            job = self._jobs.get(job_id)
            return job if job is not None and job.provider == provider else None

    def delete_job(self, job_id: str) -> bool:
        """Delete a job.

        Args:
            job_id: Its id.

        Returns:
            Whether it existed.
        """
        with self._lock:
            return self._jobs.pop(job_id, None) is not None

    def jobs(self, provider: str) -> list[BatchJob]:
        """The jobs of a provider, newest first.

        Args:
            provider: ``openai`` or ``anthropic``.

        Returns:
            The jobs.
        """
        with self._lock:
            return [job for job in reversed(self._jobs.values()) if job.provider == provider]
