"""Cumulative usage of one LLM instance: requests, failures, tokens and their cost."""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Optional

from potstill.llms.typing import Generations, TokenUsage

if TYPE_CHECKING:
    from potstill.llms.pricing import TokenPrice


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
        cost: the dollar cost of the answered requests (see `LLM.token_price`), or `None`
            ("no price") when one of them cannot be priced: no price is known for the
            model, or the provider did not report its tokens. Answers reused from the
            journal or the response cache cost nothing.
        unpriced_requests: answered requests whose cost is not known.
    """

    requests: int = 0
    cached_requests: int = 0
    failed_requests: int = 0
    retries: int = 0
    extra_requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: Optional[float] = 0.0
    unpriced_requests: int = 0

    def since(self, earlier: UsageSummary) -> UsageSummary:
        """What was consumed between `earlier` (a summary of the same LLM) and this one.

        Args:
            earlier: the summary taken first.

        Returns:
            The difference; its cost is `None` when a request in between could not be
            priced (or when `earlier` had no known cost to subtract).
        """
        counts = {
            field.name: getattr(self, field.name) - getattr(earlier, field.name)
            for field in fields(self)
            if field.name != "cost"
        }
        known = self.cost is not None and earlier.cost is not None
        cost = self.cost - earlier.cost if known else None  # type: ignore[operator]
        if counts["unpriced_requests"]:
            cost = None
        return UsageSummary(**counts, cost=cost)


def tokens_cost(
    price: Optional[TokenPrice], input_tokens: Optional[int], output_tokens: Optional[int]
) -> Optional[float]:
    """The dollar cost of one request's tokens.

    Args:
        price: the LLM's price (`LLM.token_price()`), or None when it has none.
        input_tokens: the prompt tokens the request reported.
        output_tokens: the tokens it generated.

    Returns:
        The cost, or None when there is no price or the provider did not report the tokens.
    """
    if price is None or input_tokens is None or output_tokens is None:
        return None
    return price.cost(input_tokens, output_tokens)


class UsageTracker:
    """Thread-safe counters behind `LLM.usage`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests = self._cached = self._failed = self._retries = self._extra = 0
        self._input_tokens = self._output_tokens = 0
        self._cost = 0.0
        self._unpriced = 0
        self._messages: dict[str, int] = {}

    def record_success(
        self,
        generations: Generations,
        cost: Optional[float] = None,
        usage: Optional[TokenUsage] = None,
    ) -> None:
        """Counts one answered request, the tokens it reported and its cost.

        Args:
            generations: its answer.
            cost: its dollar cost (`tokens_cost`), or None when it is not known.
            usage: `generations.usage`, when the caller has it already.
        """
        if usage is not None:
            input_tokens, output_tokens = usage.input_tokens or 0, usage.output_tokens or 0
        else:  # summed here rather than through `generations.usage` (once per request)
            input_tokens = sum(filter(None, generations.input_tokens))
            output_tokens = sum(filter(None, generations.output_tokens))
        with self._lock:
            self._requests += 1
            self._input_tokens += input_tokens
            self._output_tokens += output_tokens
            if cost is None:
                self._unpriced += 1
            else:
                self._cost += cost

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
                cost=None if self._unpriced else self._cost,
                unpriced_requests=self._unpriced,
            )
