"""Cumulative usage of one LLM instance: requests, failures and tokens."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from potstill.llms.typing import Generations


@dataclass(frozen=True)
class UsageSummary:
    """What an LLM instance has consumed since it was created.

    Attributes:
        requests: requests that returned an answer.
        cached_requests: requests answered from the journal or response cache (not sent).
        failed_requests: requests that ended in an error (after any retries).
        retries: extra attempts made after retryable errors.
        extra_requests: requests sent for generations an endpoint that ignores `n` did
            not return (each is also counted in `requests`).
        input_tokens: prompt tokens reported by the provider.
        output_tokens: generated tokens reported by the provider.
    """

    requests: int = 0
    cached_requests: int = 0
    failed_requests: int = 0
    retries: int = 0
    extra_requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


class UsageTracker:
    """Thread-safe counters behind `LLM.usage`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests = self._cached = self._failed = self._retries = self._extra = 0
        self._input_tokens = self._output_tokens = 0
        self._messages: dict[str, int] = {}

    def record_success(self, generations: Generations) -> None:
        """Counts one answered request and the tokens it reported."""
        # Summed here rather than through `generations.usage` (once per request).
        input_tokens = sum(filter(None, generations.input_tokens))
        output_tokens = sum(filter(None, generations.output_tokens))
        with self._lock:
            self._requests += 1
            self._input_tokens += input_tokens
            self._output_tokens += output_tokens

    def record_cached(self) -> None:
        """Counts one request answered from a cache instead of the provider."""
        with self._lock:
            self._cached += 1

    def record_failure(self, message: str = "") -> int:
        """Counts one request that failed for good; returns how often `message` was seen."""
        with self._lock:
            self._failed += 1
            self._messages[message] = self._messages.get(message, 0) + 1
            return self._messages[message]

    def record_retry(self) -> None:
        """Counts one retried attempt."""
        with self._lock:
            self._retries += 1

    def record_extra(self, count: int) -> None:
        """Counts requests sent because the endpoint ignores `n`."""
        with self._lock:
            self._extra += count

    def summary(self) -> UsageSummary:
        """A snapshot of the counters."""
        with self._lock:
            return UsageSummary(
                requests=self._requests,
                cached_requests=self._cached,
                failed_requests=self._failed,
                retries=self._retries,
                extra_requests=self._extra,
                input_tokens=self._input_tokens,
                output_tokens=self._output_tokens,
            )
