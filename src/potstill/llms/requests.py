"""The requests of one `AsyncLLM.agenerate_outputs` call: the request path of hosted LLMs.

For each input (or each generation, when `agenerate` has no native `n`), one request:

1. answered before (the pipeline step's journal, the response cache)? Then that answer;
2. else `agenerate` is called under the LLM's limits: at most `max_concurrent_requests` in
   flight, the requests/tokens per minute (`potstill.llms.limits`) and the spending limits
   (`potstill.llms.budget`: a request that would pass one is not sent);
3. a failure is classified (`potstill.llms.retry`): a transient one is retried with backoff
   that honours `Retry-After`, within `max_retries` and `max_retry_time` (a refused
   connection only within `refused_connection_retry_time`); any other gives up at once;
4. a request that gives up leaves `None` generations with its error
   (`potstill.llms.failures`); the other requests of the batch are unaffected.

An endpoint that ignores `n` (answers one choice where several were asked for) gets the
missing generations requested one by one, and the LLM remembers it for later inputs.
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import TYPE_CHECKING, Any, Optional

from pydantic import PositiveInt, TypeAdapter, ValidationError

from potstill.errors import PotstillUserError
from potstill.llms.budget import request_budgets
from potstill.llms.cache import known_answers
from potstill.llms.clients import loop_state
from potstill.llms.failures import fit_to_count, record_failure
from potstill.llms.limits import RateLimiter
from potstill.llms.retry import backoff_delay, classify
from potstill.llms.retry import describe as describe_failure
from potstill.llms.structured import (
    StructuredOutput,
    arepair,
    prepare_request,
    repairs,
    split_inputs,
)
from potstill.llms.typing import Generations
from potstill.llms.usage import tokens_cost
from potstill.typing import ChatType
from potstill.utils.batch_progress import current_batch_progress

if TYPE_CHECKING:
    from potstill.llms.async_llm import AsyncLLM


class BatchRequests:
    """The requests of one batch, with what they all need looked up once (pydantic private
    attributes are slow to read on a hot path).

    Attributes:
        llm: the loaded LLM.
        num_generations: generations per input.
        native: whether `agenerate` takes `num_generations` (one request per input).
        share: the part of an input one request stands for, in the batch's progress.
    """

    __slots__ = (
        "agenerate",
        "budget",
        "known",
        "limiter",
        "llm",
        "native",
        "num_generations",
        "price",
        "private",
        "progress",
        "semaphore",
        "share",
        "usage",
    )

    def __init__(self, llm: AsyncLLM, num_generations: Any) -> None:
        self.llm = llm
        self.num_generations = positive_int("num_generations", num_generations)
        self.native = llm.generation_spec().native_num_generations
        self.share = 1.0 if self.native else 1.0 / self.num_generations
        self.progress = current_batch_progress()
        self.known = known_answers(llm)
        self.limiter = rate_limiter(llm)
        self.semaphore = loop_state(llm).semaphore
        self.usage = llm._usage
        # The price, and the spending limits the requests pass (None: no limit applies).
        self.price = llm.token_price()
        self.budget = request_budgets(llm, self.price)
        # Private attributes read per request, straight from their dict (pydantic's lookup is
        # slow).
        self.private = llm.__pydantic_private__
        # The loaded check ran for the batch: call the validated `agenerate` directly.
        method = type(llm).agenerate
        self.agenerate = functools.partial(getattr(method, "__wrapped__", method), llm)

    async def run(
        self, inputs: list[ChatType], row_offset: int, kwargs: dict[str, Any]
    ) -> list[Generations]:
        """Sends the batch's requests concurrently.

        Args:
            inputs: the conversations to continue (or `(conversation, structured_output)`
                tuples: see `potstill.llms.structured`).
            row_offset: the row of the first input in the dataset, for log messages.
            kwargs: the generation kwargs.

        Returns:
            One `Generations` per input, in input order.
        """
        count = self.num_generations
        inputs, specs = split_inputs(self.llm, inputs)
        spec = specs.__getitem__ if specs is not None else _no_spec
        if self.native:
            calls = [
                self.request(single, count, kwargs, row_offset + index, spec=spec(index))
                for index, single in enumerate(inputs)
            ]
            return list(await asyncio.gather(*calls))
        calls = [
            self.request(single, None, kwargs, row_offset + index, generation, spec(index))
            for index, single in enumerate(inputs)
            for generation in range(count)
        ]
        flat = await asyncio.gather(*calls)
        return [
            Generations.concat(flat[start : start + count]) for start in range(0, len(flat), count)
        ]

    async def request(
        self,
        input: ChatType,
        num_generations: Optional[int],
        kwargs: dict[str, Any],
        row: int,
        index: Optional[int] = None,
        spec: Optional[StructuredOutput] = None,
    ) -> Generations:
        """One request: the answer known from before, else sent under the limits and retried.

        Args:
            input: the conversation.
            num_generations: generations asked for at once (`None`: one, fanned out).
            kwargs: the generation kwargs.
            row: the input's row in the dataset.
            index: which fanned-out generation this is (`None` for a native request).
            spec: the structured output its answers must match: they are checked, and
                repaired, before they are kept.

        Returns:
            The input's generations (one when fanned out).
        """
        if spec is not None:
            input, kwargs = prepare_request(self.llm, spec, input, kwargs)
        known = self.known
        key = known.key(input, kwargs, num_generations, index) if known is not None else None
        if key is not None:
            recalled = known.recall(key, row)  # type: ignore[union-attr]
            if recalled is not None:
                self.usage.record_cached()
                if self.progress is not None:
                    self.progress.add(self.share)
                return recalled
        if num_generations is None or num_generations == 1:
            # One generation: `n` cannot be ignored, so no `native_request` (one coroutine
            # less per request on the common path).
            sent = await self.send(input, num_generations, kwargs, row)
            generations = fit_to_count(self.llm, sent, 1, row)
        else:
            generations = await self.native_request(input, num_generations, kwargs, row)
        if spec is not None:
            one = None if num_generations is None else 1
            generations = await arepair(
                repairs(self.llm, spec, input, generations, row),
                lambda conversation: self.send(conversation, one, kwargs, row),
            )
        if key is not None:
            known.remember(key, row, generations)  # type: ignore[union-attr]
        if self.progress is not None:
            self.progress.add(self.share)
        return generations

    async def native_request(
        self, input: ChatType, num_generations: int, kwargs: dict[str, Any], row: int
    ) -> Generations:
        """`num_generations` generations through the API's `n`.

        Some servers and proxies ignore `n` and answer one choice. The missing generations
        are then requested one by one (in parallel), and the LLM remembers that its
        endpoint ignores `n`: later inputs send `num_generations` requests of one
        generation each at once, instead of paying a round trip for one choice first.
        """
        llm = self.llm
        ignores_n = self.private["_ignores_n"]
        if ignores_n and num_generations > 1:
            self.usage.record_extra(num_generations - 1)
            parts = await asyncio.gather(
                *(self.send(input, 1, kwargs, row) for _ in range(num_generations))
            )
            return fit_to_count(llm, Generations.concat(parts), num_generations, row)
        generations = await self.send(input, num_generations, kwargs, row)
        short = num_generations - len(generations)
        if short > 0 and generations:
            if not ignores_n and not self.private["_ignores_n"]:
                llm._ignores_n = True
                llm.logger.info(
                    "Row %d: the endpoint returned %d of %d generations (it ignores `n`); "
                    "the missing ones are requested separately, and this LLM sends one "
                    "request per generation from now on.",
                    row,
                    len(generations),
                    num_generations,
                )
            self.usage.record_extra(short)
            extra = await asyncio.gather(*(self.send(input, 1, kwargs, row) for _ in range(short)))
            generations = Generations.concat([generations, *extra])
        return fit_to_count(llm, generations, num_generations, row)

    async def send(
        self,
        input: ChatType,
        num_generations: Optional[int],
        kwargs: dict[str, Any],
        row: int,
    ) -> Generations:
        """Calls `agenerate` under the limits, retrying transient failures.

        Returns at most `num_generations` (or 1) generations: choices beyond them are
        dropped; fewer come back as the provider sent them (the caller completes them).
        """
        llm = self.llm
        expected = num_generations or 1
        extra = {} if num_generations is None else {"num_generations": num_generations}
        limiter = self.limiter
        started = time.monotonic()
        attempt = 0
        budget, held = self.budget, 0.0
        while True:
            async with self.semaphore:
                if budget is not None:
                    admitted = await budget.admit(input, kwargs, expected)
                    if admitted is None:
                        return budget.refused(expected)
                    held = admitted
                reservation = (
                    await limiter.acquire(input, llm.output_token_cap(kwargs))
                    if limiter.active
                    else None
                )
                try:
                    output = await self.agenerate(input=input, **extra, **kwargs)
                    break
                except Exception as error:
                    failure = error
                    if budget is not None:
                        budget.release(held)
            decision = classify(failure)
            deadline = started + (llm.max_retry_time or 0)
            left = deadline - time.monotonic()
            # A wait that would outlast the request's budget is not waited for: the request
            # fails now, and the others are not paused for a wait nobody will use.
            fits = decision.wait is None or decision.wait <= left
            if decision.status == 429 and decision.wait and fits:
                limiter.cool_down(decision.wait)  # capped: see RateLimiter.cool_down
            if not decision.retry or attempt >= (llm.max_retries or 0):
                return record_failure(llm, expected, failure, row)
            if not fits:
                note = (
                    f"the server asked to wait {decision.wait:g} s (Retry-After), more than "
                    f"the {max(left, 0):.0f} s left of max_retry_time={llm.max_retry_time:g}"
                )
                return record_failure(llm, expected, failure, row, note)
            delay = (
                decision.wait
                if decision.wait is not None
                else backoff_delay(attempt, base=llm.retry_backoff or 0.5)
            )
            # A refused connection is usually a wrong URL or a stopped server: retried briefly.
            refused_deadline = min(deadline, started + (llm.refused_connection_retry_time or 0))
            if time.monotonic() + delay > (refused_deadline if decision.refused else deadline):
                return record_failure(llm, expected, failure, row)
            self.usage.record_retry()
            llm.logger.debug(
                "Row %d: %s, retrying in %.2f s (retry %d of %d).",
                row,
                describe_failure(failure),
                delay,
                attempt + 1,
                llm.max_retries,
            )
            await asyncio.sleep(delay)
            attempt += 1
        generations = Generations.coerce(output)
        if len(generations) > expected:  # choices beyond the ones asked for are dropped
            generations = generations.resized(expected, "")
        usage = generations.usage
        if reservation is not None:
            limiter.settle(reservation, usage.input_tokens, usage.output_tokens)
        cost = tokens_cost(self.price, usage.input_tokens, usage.output_tokens)
        self.usage.record_success(generations, cost, usage)
        if budget is not None:
            budget.settle(held, cost)
        return generations


def _no_spec(index: int) -> None:
    return None


def rate_limiter(llm: AsyncLLM) -> RateLimiter:
    """The LLM's limiter, set to its current requests/tokens-per-minute fields."""
    limits = (
        llm.requests_per_minute,
        llm.tokens_per_minute,
        llm.input_tokens_per_minute,
        llm.output_tokens_per_minute,
    )
    if limits != llm._limits:
        llm._limiter.configure(*limits)
        llm._limits = limits
    return llm._limiter


def positive_int(name: str, value: Any) -> int:
    """Coerces an argument like `validate_call` would (`"2"` -> 2), or fails naming it."""
    try:
        return _POSITIVE_INT.validate_python(value)
    except ValidationError:
        raise PotstillUserError(f"`{name}` must be a positive integer, got {value!r}.") from None


_POSITIVE_INT: TypeAdapter[int] = TypeAdapter(PositiveInt)
