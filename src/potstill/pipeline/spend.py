"""What a pipeline run spends: its LLMs' requests, tokens and dollars, and its spending limit.

`RunSpending` wraps a run: it refuses, before anything runs, a spending limit that cannot
be enforced (an LLM that would spend under it without a price); it makes the run's limits
active for its requests (`potstill.llms.budget`), whose first refusal stops the engine
gracefully (`stop_when_spent`); and at the end it tells what the run consumed (`RunCost`:
`pipeline.last_run_cost`, the run's summary line, the CLI's table), raising
`BudgetExceededError` when a limit stopped the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from potstill.errors import BudgetExceededError, PotstillUserError
from potstill.llms.async_llm import AsyncLLM
from potstill.llms.budget import RunBudgets, current_run_budgets, dollars, no_price_message
from potstill.llms.usage import UsageSummary
from potstill.steps.tasks.base import _Task

if TYPE_CHECKING:
    from potstill.llms.base import LLM
    from potstill.pipeline.base import Pipeline
    from potstill.pipeline.dag import DAG
    from potstill.pipeline.engine import Engine

logger = logging.getLogger("potstill.pipeline")


@dataclass(frozen=True)
class LLMCost:
    """What one LLM consumed in a run.

    Attributes:
        steps: the steps that use it (one LLM instance may serve several).
        llm: its class name.
        model: its model name.
        usage: its requests, tokens and cost in this run (`cost` is `None`: no price).
    """

    steps: tuple[str, ...]
    llm: str
    model: str
    usage: UsageSummary


@dataclass(frozen=True)
class RunCost:
    """What a pipeline run's LLMs consumed.

    Attributes:
        llms: one entry per LLM instance, in pipeline order.
    """

    llms: tuple[LLMCost, ...]

    @property
    def cost(self) -> Optional[float]:
        """The run's cost in dollars, or `None` when an LLM of the run has no price (a
        total without it would be wrong)."""
        costs = [entry.usage.cost for entry in self.llms]
        return None if None in costs else sum(costs)  # type: ignore[arg-type]

    def describe(self) -> str:
        """One line: requests, tokens and cost (an LLM without a price is named)."""
        usage = [entry.usage for entry in self.llms]
        line = (
            f"{sum(u.requests for u in usage):,} request(s) sent "
            f"({sum(u.cached_requests for u in usage):,} answered from the journal or cache), "
            f"{sum(u.input_tokens for u in usage):,} input + "
            f"{sum(u.output_tokens for u in usage):,} output tokens"
        )
        priced = dollars(sum(entry.usage.cost or 0.0 for entry in self.llms))
        unpriced = [entry for entry in self.llms if entry.usage.cost is None]
        if not unpriced:
            return f"{line}, cost {priced}"
        names = ", ".join(f"{e.llm} {e.model!r} (step {', '.join(e.steps)})" for e in unpriced)
        if len(unpriced) == len(self.llms):
            return f"{line}, no price for {names}"
        return f"{line}, cost {priced} plus what has no price: {names}"


class RunSpending:
    """A pipeline run's spending (a context manager around the run).

    Args:
        pipeline: the pipeline about to run.
        max_cost: the run's limit, overriding `pipeline.max_cost`.

    Raises:
        PotstillUserError: when a limit is not a positive number, or an LLM under a limit
            (the pipeline's or its own) has no price: a spend nobody can count would make
            the limit a false promise.
    """

    def __init__(self, pipeline: Pipeline, max_cost: Optional[float]) -> None:
        self.pipeline = pipeline
        limit = checked_max_cost(max_cost) or checked_max_cost(pipeline.max_cost)
        # On Ray the requests are made by the steps' replicas, whose spending is not added up.
        self.counted = getattr(pipeline, "spending_counted_here", True)
        if not self.counted:
            refuse_limits_on_ray(pipeline.dag, limit)
        check_prices(pipeline.dag, limit)
        self.budgets = RunBudgets(limit, f"pipeline {pipeline.name!r}")
        self._start: dict[int, tuple[LLM, list[str], UsageSummary]] = {}
        for name, step in pipeline.dag.steps.items():
            if isinstance(step, _Task):
                entry = self._start.setdefault(id(step.llm), (step.llm, [], step.llm.usage))
                entry[1].append(name)

    def cost(self) -> RunCost:
        """What each LLM consumed since the run started."""
        return RunCost(
            tuple(
                LLMCost(tuple(steps), type(llm).__name__, _model(llm), llm.usage.since(start))
                for llm, steps, start in self._start.values()
            )
        )

    def __enter__(self) -> RunSpending:
        self.budgets.__enter__()
        return self

    def __exit__(self, error_type: Any, *exc_info: Any) -> None:
        self.budgets.__exit__()
        if not self.counted:  # no cost table that would say nothing was spent
            self.pipeline.last_run_cost = None
            return
        name = self.pipeline.name
        cost = self.pipeline.last_run_cost = self.cost()
        if cost.llms:
            logger.info("Pipeline %r: %s.", name, cost.describe())
        refusal = self.budgets.refusal
        if refusal is not None and error_type in (None, BudgetExceededError):
            raise BudgetExceededError(
                f"Pipeline {name!r} stopped: {refusal}. This run: {cost.describe()}. Every "
                "answered request is stored: run it again with a higher max_cost to resume "
                "(answered requests are not sent again).",
                cost=cost,
            ) from None


def raise_if_spent() -> None:
    """Ends a run that a spending limit stopped, once its folder is closed and before its
    datasets are read (`RunSpending` says what it spent)."""
    budgets = current_run_budgets()
    if budgets is not None and budgets.refusal is not None:
        raise BudgetExceededError(budgets.refusal)


def stop_when_spent(engine: Engine) -> None:
    """Makes the run's first spent budget stop `engine` gracefully (see `Engine.stop`), from
    whichever thread the refused request runs in."""
    budgets = current_run_budgets()
    if budgets is None:
        return
    loop = asyncio.get_running_loop()

    def stop() -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the run is over
            loop.call_soon_threadsafe(engine.stop)

    budgets.on_spent = stop


def refuse_limits_on_ray(dag: DAG, max_cost: Optional[float]) -> None:
    """Refuses a spending limit on a run whose requests are made on Ray (not enforced yet).

    Args:
        dag: the pipeline's steps.
        max_cost: the pipeline's limit, or None.

    Raises:
        PotstillUserError: when the pipeline or one of its LLMs has a `max_cost`.
    """
    limited = [f"max_cost={max_cost:g}"] if max_cost else []
    limited += [
        f"step {name!r}: llm.max_cost={step.llm.max_cost:g}"
        for name, step in dag.steps.items()
        if isinstance(step, _Task) and getattr(step.llm, "max_cost", None)
    ]
    if limited:
        raise PotstillUserError(
            f"Spending limits are not enforced on Ray yet ({', '.join(limited)}): the steps' "
            "replicas make the requests and their spending is not added up. Run the "
            "pipeline without .ray() / --ray to use max_cost, or leave max_cost out."
        )


def check_prices(dag: DAG, max_cost: Optional[float]) -> None:
    """Refuses a spending limit that cannot be enforced (see `RunSpending`).

    Args:
        dag: the pipeline's steps.
        max_cost: the pipeline's limit, or None.
    """
    for name, step in dag.steps.items():
        if not isinstance(step, _Task):
            continue
        llm = step.llm
        if not (max_cost or getattr(llm, "max_cost", None)):
            continue
        price = llm.token_price()
        if price is None:
            raise PotstillUserError(no_price_message(llm, f"Step {name!r}: "))
        if not isinstance(llm, AsyncLLM) and (price.input_per_token or price.output_per_token):
            logger.warning(
                "Step %r: max_cost covers the requests of hosted (async) LLMs; %s generates "
                "in this process and is not held to it.",
                name,
                type(llm).__name__,
            )


def checked_max_cost(max_cost: Any) -> Optional[float]:
    """A spending limit as given (`None`: no limit), or a clear error."""
    if max_cost is None:
        return None
    if isinstance(max_cost, bool) or not isinstance(max_cost, (int, float)) or max_cost <= 0:
        raise PotstillUserError(
            f"max_cost={max_cost!r} is not an amount of dollars: give a number > 0, e.g. "
            "max_cost=5.0, or None for no limit."
        )
    return float(max_cost)


def _model(llm: LLM) -> str:
    try:
        return llm.model_name
    except Exception:  # a model name that needs loading first
        return "?"
