"""Spending limits (`max_cost`): the check each request passes before it is sent.

A budget is a number of dollars shared by the requests sent under it: a pipeline run's
(`Pipeline(max_cost=...)` or `run(max_cost=...)`) covers every LLM of the run, an LLM's own
(`max_cost` on an `AsyncLLM`) covers that LLM, per pipeline run (outside a run: everything it
sends). A request passes each budget that applies to it.

What the projected spend is: before a request is sent its cost is reserved, an estimate
made from the LLM's price (`LLM.token_price()`): its prompt tokens estimated from the text
(about 4 characters per token, as the rate limiter does) at the input price, plus its output
cap (`max_new_tokens`/`max_tokens`/`max_output_tokens`, times the generations it asks for) at
the output price, or without a cap the LLM's average output per answered request so far
(256 tokens before the first answer). When the request is answered, its real cost (from the
tokens the provider reported) replaces the reservation; a request that fails gives its
reservation back.

A request is sent when the spend so far, the reservations of the requests in flight and its
own fit within `max_cost`. When only the reservations in flight are in the way it waits for
them to settle. When the spend so far and its own reservation already pass `max_cost`, it is
not sent, and the budget is spent: no later request under it is sent either (each fails with
a `BudgetExceededError` in its row), and a pipeline run stops starting batches, lets the
requests in flight finish and keeps them (see `Pipeline.run`). With an output cap and a
prompt estimate that holds, the spend never passes `max_cost`; without a cap it can pass it
by what the requests in flight generate beyond the average.

A model with no price cannot be held to a budget: a run refuses to start with one (see
`potstill.pipeline.spend.check_prices`), and outside a run a batch of requests under a budget
whose LLM has no price is refused here, before anything is sent.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import threading
from typing import TYPE_CHECKING, Any, Callable, Optional

from potstill.errors import BudgetExceededError, PotstillUserError
from potstill.llms.limits import estimate_tokens
from potstill.llms.pricing import price_table_available
from potstill.llms.typing import Generations

if TYPE_CHECKING:
    from potstill.llms.async_llm import AsyncLLM
    from potstill.llms.pricing import TokenPrice

logger = logging.getLogger("potstill.budget")

# How often a request waiting for the reservations in flight to settle looks again.
_WAIT_S = 0.02
# The output estimate of an LLM without an output cap, before its first answer.
_DEFAULT_OUTPUT_TOKENS = 256

_run_budgets: contextvars.ContextVar[Optional[RunBudgets]] = contextvars.ContextVar(
    "potstill_run_budgets", default=None
)


def dollars(amount: float) -> str:
    """An amount of dollars as messages show it: `$12.35`, `$0.0123`, `$0.0000087` (small
    amounts keep three significant digits, so a cheap run never shows as `$0.0000`)."""
    if amount >= 1 or amount <= 0:
        return f"${amount:,.2f}"
    decimals = min(max(4, 2 - math.floor(math.log10(amount))), 12)
    return f"${amount:.{decimals}f}"


class Budget:
    """A spending limit shared by every request sent under it, from any thread or loop.

    Args:
        max_cost: the most dollars the requests may cost.
        owner: what it limits, for messages (`"pipeline 'x'"`).
        on_spent: called once, with the message, when the budget refuses its first request.

    Attributes:
        spent: the cost of the answered requests (their reservation when a provider did not
            report their tokens).
        reserved: the reservations of the requests in flight.
        refusal: why the budget refuses every request, once it is spent.
    """

    def __init__(
        self, max_cost: float, owner: str, on_spent: Optional[Callable[[str], None]] = None
    ) -> None:
        self.max_cost = max_cost
        self.owner = owner
        self.on_spent = on_spent
        self.spent = 0.0
        self.reserved = 0.0
        self.refusal: Optional[str] = None
        self._lock = threading.Lock()

    def try_reserve(self, amount: float) -> Optional[bool]:
        """Reserves `amount` for a request about to be sent.

        Args:
            amount: the request's estimated cost.

        Returns:
            True when it is reserved; False when the reservations in flight are in the way
            (try again once they settle); None when the request must not be sent.
        """
        with self._lock:
            if self.refusal is not None:
                return None
            if self.spent + amount <= self.max_cost:
                if self.spent + self.reserved + amount > self.max_cost:
                    return False
                self.reserved += amount
                return True
            self.refusal = (
                f"max_cost={dollars(self.max_cost)} of {self.owner} reached: "
                f"{dollars(self.spent)} spent, and the next request (estimated "
                f"{dollars(amount)}) would pass it"
            )
        logger.warning(
            "Spending limit: %s; no new request is sent (those in flight finish).", self.refusal
        )
        if self.on_spent is not None:
            self.on_spent(self.refusal)
        return None

    def settle(self, amount: float, cost: Optional[float]) -> None:
        """Replaces a reservation with the request's real cost.

        Args:
            amount: what was reserved.
            cost: the real cost, or None when the provider did not report the tokens (the
                reservation is then counted as spent).
        """
        with self._lock:
            self.reserved = max(self.reserved - amount, 0.0)
            self.spent += amount if cost is None else cost

    def release(self, amount: float) -> None:
        """Gives back the reservation of a request that failed (it cost nothing)."""
        with self._lock:
            self.reserved = max(self.reserved - amount, 0.0)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


class RunBudgets:
    """The budgets of one pipeline run: the pipeline's and each LLM's. Active (for the
    requests of the run) inside `with run_budgets:`.

    Args:
        max_cost: the pipeline's limit, or None.
        owner: the pipeline, for messages.

    Attributes:
        on_spent: called (from any thread) when a budget refuses its first request: the
            engine's graceful stop.
        refusal: the first budget's message, once one is spent.
    """

    def __init__(self, max_cost: Optional[float], owner: str) -> None:
        self.pipeline = Budget(max_cost, owner, self._spent) if max_cost else None
        self.on_spent: Optional[Callable[[], None]] = None
        self.refusal: Optional[str] = None
        self._llms: dict[int, Budget] = {}
        self._lock = threading.Lock()
        self._tokens: list[contextvars.Token[Optional[RunBudgets]]] = []

    def for_llm(self, llm: Any) -> tuple[Budget, ...]:
        """The budgets an LLM's requests pass in this run."""
        own: Optional[Budget] = None
        max_cost = getattr(llm, "max_cost", None)
        if max_cost:
            with self._lock:
                own = self._llms.get(id(llm))
                if own is None:
                    own = self._llms[id(llm)] = Budget(max_cost, _llm_owner(llm), self._spent)
        return tuple(budget for budget in (self.pipeline, own) if budget is not None)

    def _spent(self, message: str) -> None:
        with self._lock:
            first = self.refusal is None
            if first:
                self.refusal = message
        if first and self.on_spent is not None:
            self.on_spent()

    def __enter__(self) -> RunBudgets:
        self._tokens.append(_run_budgets.set(self))
        return self

    def __exit__(self, *exc_info: Any) -> None:
        _run_budgets.reset(self._tokens.pop())


def current_run_budgets() -> Optional[RunBudgets]:
    """The budgets of the pipeline run in progress (in this context), if any."""
    return _run_budgets.get()


def _llm_owner(llm: Any) -> str:
    return f"{type(llm).__name__} {llm.model_name!r}"


def budgets_for(llm: AsyncLLM) -> tuple[Budget, ...]:
    """The budgets an LLM's requests pass now: the pipeline run's, or outside a run the
    LLM's own `max_cost` (counted from its creation)."""
    run = current_run_budgets()
    if run is not None:
        return run.for_llm(llm)
    if not llm.max_cost:
        return ()
    own = llm._budget
    if own is None:
        own = llm._budget = Budget(llm.max_cost, _llm_owner(llm))
    own.max_cost = llm.max_cost
    return (own,)


class RequestBudgets:
    """The budgets of one batch's requests, with the LLM's price and output estimate.

    Args:
        llm: the LLM sending the requests.
        budgets: the budgets they pass.
        price: the LLM's price.
    """

    __slots__ = ("budgets", "llm", "output_estimate", "price")

    def __init__(self, llm: AsyncLLM, budgets: tuple[Budget, ...], price: TokenPrice) -> None:
        self.llm = llm
        self.budgets = budgets
        self.price = price
        usage = llm.usage
        self.output_estimate = (
            usage.output_tokens / usage.requests if usage.requests else _DEFAULT_OUTPUT_TOKENS
        )

    def estimate(self, input: Any, kwargs: dict[str, Any], generations: int) -> float:
        """A request's projected cost (see the module docstring)."""
        cap = self.llm.output_token_cap(kwargs)
        output = cap * generations if cap is not None else self.output_estimate
        price = self.price
        return (
            getattr(price, "per_request", 0.0)
            + estimate_tokens(input) * price.input_per_token
            + output * price.output_per_token
        )

    async def admit(self, input: Any, kwargs: dict[str, Any], generations: int) -> Optional[float]:
        """Waits until the request fits in every budget, and reserves its cost.

        Args:
            input: the conversation.
            kwargs: the generation kwargs.
            generations: the generations the request asks for.

        Returns:
            The amount reserved, or None when the request must not be sent.
        """
        amount = self.estimate(input, kwargs, generations)
        while True:
            taken: list[Budget] = []
            verdict: Optional[bool] = True
            for budget in self.budgets:
                verdict = budget.try_reserve(amount)
                if not verdict:
                    break
                taken.append(budget)
            if verdict:
                return amount
            for budget in taken:
                budget.release(amount)
            if verdict is None:
                return None
            await asyncio.sleep(_WAIT_S)

    def settle(self, amount: float, cost: Optional[float]) -> None:
        """Replaces a request's reservation with its real cost, in every budget."""
        for budget in self.budgets:
            budget.settle(amount, cost)

    def release(self, amount: float) -> None:
        """Gives back the reservation of a request that failed, in every budget."""
        for budget in self.budgets:
            budget.release(amount)

    def refused(self, generations: int) -> Generations:
        """The failed generations of a request that was not sent (counted as a failure;
        logged once, by the budget)."""
        reason = next((b.refusal for b in self.budgets if b.refusal is not None), "")
        message = f"{BudgetExceededError.__name__}: not sent: {reason}"
        self.llm._usage.record_failure(message)
        return Generations.failed(generations, message)


def request_budgets(llm: AsyncLLM, price: Optional[TokenPrice]) -> Optional[RequestBudgets]:
    """The budgets of a batch of `llm`'s requests, or None when none applies (the usual
    case, which costs one look-up per batch).

    Raises:
        PotstillUserError: when a budget applies but the LLM has no price.
    """
    budgets = budgets_for(llm)
    if not budgets:
        return None
    if price is None:
        raise PotstillUserError(no_price_message(llm))
    return RequestBudgets(llm, budgets, price)


def no_price_message(llm: Any, where: str = "") -> str:
    """The error of a budget that cannot be enforced: the LLM has no price."""
    why = (
        "the price table does not list it"
        if price_table_available()
        else "the price table is not installed: pip install 'potstill[cost]'"
    )
    return (
        f"{where}{type(llm).__name__} (model {llm.model_name!r}) has no price ({why}), so "
        "max_cost cannot be enforced for it. Give its price: "
        "`price=Price.per_million(input=..., output=...)` on the LLM, or "
        '`--param STEP.llm.price=\'{"input_per_million": ..., "output_per_million": ...}\'`.'
    )
