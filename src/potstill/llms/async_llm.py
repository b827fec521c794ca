"""The `AsyncLLM` base class: an LLM that generates for one input at a time, asynchronously
(hosted APIs).

A provider implements `model_name`, `load` and `agenerate`, and, when it has an async SDK
client, `_create_client()` (and `_aclose_client(client)` when its client closes differently);
the `client` property then gives the client of the running event loop. Everything else is
shared, here and beside this module: the batch's requests, with their limits and retries
(`potstill.llms.requests`), the SDK clients per event loop (`potstill.llms.clients`).
"""

from __future__ import annotations

import weakref
from abc import abstractmethod
from typing import Any, Callable, Optional

from pydantic import (
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    PrivateAttr,
)

from potstill.llms.base import LLM
from potstill.llms.budget import Budget
from potstill.llms.clients import client_for, close_client, close_clients
from potstill.llms.limits import RateLimiter
from potstill.llms.requests import BatchRequests
from potstill.llms.typing import GenerateOutput, Generations
from potstill.mixins.runtime_parameters import RuntimeParameter
from potstill.typing import ChatType
from potstill.utils.fields import ExecutionOnly
from potstill.utils.portal import run_sync


class AsyncLLM(LLM):
    """Base class for LLMs that generate for one input at a time, asynchronously.

    Subclasses implement `model_name`, `load` and `agenerate`; `generate` is provided here and
    must not be overridden. If `agenerate` takes `num_generations`, it is called once per input
    with it (native `n`); otherwise it is called `num_generations` times in parallel.

    Every request goes through this instance's limiter (at most `max_concurrent_requests` in
    flight, shared by every task that uses the instance). Transient failures (429, 5xx,
    timeouts, connection errors) are retried here, with exponential backoff and jitter that
    honours `Retry-After`, so SDK clients are created with their own retries turned off. A
    refused connection (nothing listens at the endpoint) is retried only within
    `refused_connection_retry_time`, so a wrong URL fails in about a second, not minutes. A
    request that still fails gives `None` for its generations only; the error is logged with
    the row index and kept.

    Requests and tokens per minute are paced evenly (see `potstill.llms.limits`); a 429 with
    `Retry-After` pauses every request of the instance for that long (at most 30 s). A
    `Retry-After` longer than what is left of the request's `max_retry_time` fails that
    request at once and pauses nothing; one that cannot be read counts as absent.

    Attributes:
        max_concurrent_requests: the most requests this LLM has in flight at once.
        max_retries: retries per request after the first attempt.
        max_retry_time: the most seconds a request may spend across attempts and waits.
        refused_connection_retry_time: the most seconds a request keeps retrying while the
            endpoint refuses connections (nothing listens there).
        retry_backoff: the backoff before the first retry (doubling, jittered).
        requests_per_minute: the most requests started per minute.
        tokens_per_minute: the most input + output tokens per minute.
        input_tokens_per_minute: the most input tokens per minute.
        output_tokens_per_minute: the most output tokens per minute.
        max_cost: the most dollars this LLM may spend per pipeline run (outside a run:
            from its creation); see `potstill.llms.budget`.
    """

    max_concurrent_requests: ExecutionOnly[RuntimeParameter[PositiveInt]] = Field(
        default=64,
        description="The most requests this LLM sends at once, shared by every task using it.",
    )
    max_retries: ExecutionOnly[RuntimeParameter[NonNegativeInt]] = Field(
        default=6,
        description="The maximum number of times to retry the request to the API before "
        "failing (on rate limits, server errors, timeouts and connection errors).",
    )
    max_retry_time: ExecutionOnly[RuntimeParameter[PositiveFloat]] = Field(
        default=600.0,
        description="The most seconds one request may spend across all its attempts and "
        "waits before it is given up.",
    )
    refused_connection_retry_time: ExecutionOnly[RuntimeParameter[NonNegativeFloat]] = Field(
        default=1.0,
        description="The most seconds a request keeps retrying while the endpoint refuses "
        "connections (nothing listens there: a wrong URL or a server that is not running); "
        "0 gives up at once. Raise it when the server may still be starting.",
    )
    retry_backoff: ExecutionOnly[RuntimeParameter[PositiveFloat]] = Field(
        default=0.5,
        description="The backoff before the first retry, in seconds; it doubles with each "
        "retry (with full jitter, capped at 30 s) unless the server sends `Retry-After`.",
    )
    requests_per_minute: ExecutionOnly[Optional[RuntimeParameter[PositiveFloat]]] = Field(
        default=None,
        description="The most requests this LLM starts per minute (spread evenly), shared "
        "by every task using it.",
    )
    tokens_per_minute: ExecutionOnly[Optional[RuntimeParameter[PositiveFloat]]] = Field(
        default=None,
        description="The most tokens (input + output) per minute, shared by every task "
        "using this LLM.",
    )
    input_tokens_per_minute: ExecutionOnly[Optional[RuntimeParameter[PositiveFloat]]] = Field(
        default=None, description="The most input (prompt) tokens per minute."
    )
    output_tokens_per_minute: ExecutionOnly[Optional[RuntimeParameter[PositiveFloat]]] = Field(
        default=None, description="The most output (generated) tokens per minute."
    )
    max_cost: ExecutionOnly[Optional[RuntimeParameter[PositiveFloat]]] = Field(
        default=None,
        description="The most dollars this LLM may spend per pipeline run (outside a run: "
        "from its creation). A request that would pass it is not sent, and the run stops "
        "gracefully; see the cost guide.",
    )

    _ignores_n: bool = PrivateAttr(default=False)  # see `BatchRequests.native_request`
    _loop_states: Any = PrivateAttr(default_factory=weakref.WeakKeyDictionary)
    _limiter: RateLimiter = PrivateAttr(default_factory=RateLimiter)
    _limits: tuple[Any, ...] = PrivateAttr(default=())
    _budget: Optional[Budget] = PrivateAttr(default=None)  # `max_cost` outside a run

    @abstractmethod
    async def agenerate(
        self, input: ChatType, num_generations: int = 1, **kwargs: Any
    ) -> GenerateOutput:
        """Generates for one input.

        Args:
            input: the conversation to continue.
            num_generations: how many generations (omit the argument if the API has no `n`).
            **kwargs: generation kwargs.

        Returns:
            The generations (a `Generations` to also report usage).
        """

    @classmethod
    def generation_method(cls) -> Callable[..., Any]:
        return cls.agenerate

    def generate(  # type: ignore[override]
        self, inputs: list[ChatType], num_generations: int = 1, **kwargs: Any
    ) -> list[GenerateOutput]:
        """`LLM.generate` for an async LLM, provided here (providers implement `agenerate`):
        the inputs' requests run concurrently on a background event loop, so it works the
        same from scripts, notebooks and threads.

        Returns:
            One `Generations` (a list of texts) per input, in input order.
        """
        self._ensure_loaded("generate")
        return run_sync(self.agenerate_outputs(inputs, num_generations, **kwargs))  # type: ignore[return-value]

    def _run_batch(
        self, inputs: list[ChatType], num_generations: Any, row_offset: int, kwargs: dict
    ) -> list[Generations]:
        return run_sync(self._arun_batch(inputs, num_generations, row_offset, kwargs))

    async def _arun_batch(
        self, inputs: list[ChatType], num_generations: Any, row_offset: int, kwargs: dict
    ) -> list[Generations]:
        """Runs one batch's requests (see `potstill.llms.requests`)."""
        return await BatchRequests(self, num_generations).run(inputs, row_offset, kwargs)

    def output_token_cap(self, kwargs: dict[str, Any]) -> Optional[int]:
        """The most output tokens a request with these generation kwargs may produce (for the
        tokens-per-minute limits), under the names providers use for it.

        Args:
            kwargs: the request's generation kwargs.

        Returns:
            The cap, or `None` when the request sets none.
        """
        for name in ("max_new_tokens", "max_tokens", "max_output_tokens"):
            value = kwargs.get(name)
            if isinstance(value, int):
                return value
        return None

    # -- the SDK client (one per event loop; see `potstill.llms.clients`) ---------------

    def _create_client(self) -> Any:
        """Creates the provider's async SDK client (providers override this)."""
        return None

    @property
    def client(self) -> Any:
        """The SDK client for the running event loop (async clients are bound to a loop)."""
        return client_for(self)

    async def _aclose_client(self, client: Any) -> None:
        """Closes an SDK client (providers override this when theirs closes differently)."""
        await close_client(client)

    def unload(self) -> None:
        """Closes the SDK clients (on the event loops they belong to)."""
        close_clients(self)
        super().unload()
