"""Spending limits (`max_cost`): a request that would pass one is not sent, a pipeline run
stops gracefully keeping everything answered, and a run with a higher limit resumes without
sending answered requests again (counted at the loopback server)."""

from __future__ import annotations

from typing import Any

import pytest
from tests.fake_server import FakeServer

from potstill.errors import BudgetExceededError, PotstillUserError
from potstill.llms import OpenAILLM
from potstill.llms.budget import Budget, dollars
from potstill.llms.limits import estimate_tokens
from potstill.llms.pricing import Price
from potstill.llms.testing import TestLLM
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration
from potstill.steps.tasks.base import METADATA_COLUMN

ROWS = 60
QUESTIONS = [f"Question {i}: what is the sum of {i} and {i}?" for i in range(ROWS)]
# A thousandth of a dollar per token: costs are easy to reason about.
PRICE = Price.per_million(input=1000.0, output=1000.0)
CAP = 8  # max_new_tokens: the reservation's output part is exact


def reservation(question: str) -> float:
    """What a request reserves before it is sent (see `potstill.llms.budget`)."""
    return (estimate_tokens([{"role": "user", "content": question}]) + CAP) * 1e-3


def build(llm: Any, name: str = "budget", **pipeline: Any) -> Pipeline:
    with Pipeline(name=name, **pipeline) as built:
        load = LoadDataFromDicts(data=[{"instruction": q} for q in QUESTIONS], batch_size=6)
        load >> TextGeneration(name="gen", llm=llm, input_batch_size=3)
    return built


def openai_llm(**kwargs: Any) -> OpenAILLM:
    return OpenAILLM(
        model="gpt-4o-mini",
        price=PRICE,
        max_concurrent_requests=4,
        generation_kwargs={"max_new_tokens": CAP},
        **kwargs,
    )


# -- one budget --------------------------------------------------------------------------------


def test_a_budget_reserves_waits_and_refuses() -> None:
    spent: list[str] = []
    budget = Budget(1.0, "pipeline 'p'", spent.append)

    assert budget.try_reserve(0.4) is True
    assert budget.try_reserve(0.4) is True
    assert budget.try_reserve(0.4) is False  # only the reservations in flight are in the way
    budget.settle(0.4, 0.1)  # answered: its real cost replaces the reservation
    budget.release(0.4)  # failed: it cost nothing
    assert (budget.spent, budget.reserved) == (pytest.approx(0.1), 0.0)
    assert budget.try_reserve(0.9) is True
    budget.settle(0.9, None)  # no usage reported: the reservation counts as spent
    assert budget.try_reserve(0.5) is None  # 1.0 spent + 0.5 would pass 1.0
    assert budget.try_reserve(0.0) is None  # spent: nothing is sent any more
    assert spent == [budget.refusal]
    assert "max_cost=$1.00 of pipeline 'p' reached: $1.00 spent" in spent[0]


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        (0.0, "$0.00"),
        (1234.5, "$1,234.50"),
        (1.0, "$1.00"),
        (0.0123, "$0.0123"),
        (8.7e-6, "$0.00000870"),
    ],
)
def test_amounts_keep_their_significant_digits(amount: float, shown: str) -> None:
    assert dollars(amount) == shown


# -- a pipeline run ----------------------------------------------------------------------------


def test_the_run_stops_gracefully_and_a_higher_budget_resumes(
    openai_env: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    openai_env.configure(latency_s=0.05)
    llm = openai_llm()
    pipeline = build(llm)
    max_cost = sum(reservation(q) for q in QUESTIONS) / 3

    with pytest.raises(BudgetExceededError) as stopped:
        pipeline.run(max_cost=max_cost)

    answered = len(openai_env.requests)
    cost = stopped.value.cost
    assert 0 < answered < ROWS
    # every request sent was answered and counted, in flight at the stop or not
    assert llm.usage.requests == answered == cost.llms[0].usage.requests
    assert cost.cost == pytest.approx(llm.usage.cost) and cost.cost <= max_cost
    assert openai_env.state.peak_concurrency > 1  # requests were in flight together
    # no batch started after the stop: only the rows of the batches in flight were refused
    assert 0 < llm.usage.failed_requests < (ROWS - answered) / 2
    message = str(stopped.value)
    assert f"max_cost={dollars(max_cost)} of pipeline 'budget' reached" in message
    assert f"{answered} request(s) sent" in message and f"{dollars(cost.cost)}" in message
    assert "run it again with a higher max_cost to resume" in message
    assert pipeline.last_run_cost is cost
    # the rows it did not get to are not reported as failed rows of a finished run
    assert not [r for r in caplog.records if "output rows failed" in r.getMessage()]

    distiset = pipeline.run(max_cost=10.0)

    rows = distiset["default"]["train"]
    assert rows["instruction"] == QUESTIONS  # every row once, in order
    assert all(generation for generation in rows["generation"])
    assert distiset.failed_rows.total == 0
    assert len(openai_env.requests) == ROWS  # nothing answered was sent again
    assert pipeline.last_run_cost.llms[0].usage.requests == ROWS - answered
    assert sum(r[METADATA_COLUMN]["statistics_gen"]["cost"] for r in rows) == pytest.approx(
        llm.usage.cost
    )


def test_requests_in_flight_when_the_budget_stops_the_run_finish_and_are_kept(
    openai_env: FakeServer,
) -> None:
    # Row 0 is answered at once, rows 1-3 take a second; row 4's prompt alone would pass the
    # budget: it is refused (stopping the run) as soon as row 0 frees its place, while rows
    # 1-3 are still in flight.
    questions = [
        "Question A?",
        *(f"[[delay=1]] Question {name}?" for name in "BCD"),
        "Question E? " + "and more " * 200,
        *(f"Question {name}?" for name in "FGH"),
    ]
    llm = openai_llm()
    with Pipeline(name="in-flight") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": q} for q in questions])
        load >> TextGeneration(name="gen", llm=llm, input_batch_size=4)
    max_cost = 4.5 * reservation(questions[1])
    assert reservation(questions[4]) > max_cost

    with pytest.raises(BudgetExceededError):
        pipeline.run(max_cost=max_cost)

    sent = [request.body["messages"][-1]["content"] for request in openai_env.requests]
    assert sorted(sent) == sorted(questions[:4])
    assert llm.usage.requests == 4  # the three in flight at the stop were answered, and kept

    rows = pipeline.run(max_cost=10.0)["default"]["train"]

    assert all(rows["generation"])
    assert len(openai_env.requests) == len(questions)  # rows 0-3 were not sent again


def test_the_pipelines_own_max_cost_applies_and_run_overrides_it(openai_env: FakeServer) -> None:
    pipeline = build(openai_llm(), max_cost=reservation(QUESTIONS[0]) / 2)

    with pytest.raises(BudgetExceededError, match="max_cost="):
        pipeline.run()
    assert openai_env.requests == []  # not even the first request fits

    pipeline.run(max_cost=10.0)
    assert len(openai_env.requests) == ROWS


def test_an_llms_own_max_cost_stops_the_run(openai_env: FakeServer) -> None:
    llm = openai_llm(max_cost=5 * reservation(QUESTIONS[0]))

    with pytest.raises(BudgetExceededError, match="of OpenAILLM 'gpt-4o-mini' reached"):
        build(llm).run()

    assert 0 < len(openai_env.requests) < ROWS
    assert llm.usage.cost <= llm.max_cost


def test_a_budget_without_a_price_is_refused_before_anything_is_sent(
    openai_env: FakeServer,
) -> None:
    llm = OpenAILLM(model="no-such-model-x1")

    with pytest.raises(PotstillUserError) as refused:
        build(llm).run(max_cost=1.0)

    assert openai_env.requests == []
    message = str(refused.value)
    assert "Step 'gen': OpenAILLM (model 'no-such-model-x1') has no price" in message
    assert "price=Price.per_million(input=..., output=...)" in message

    llm.price = Price.per_million(input=1.0, output=1.0)
    build(llm, name="priced").run(max_cost=1.0)
    assert len(openai_env.requests) == ROWS


def test_models_that_cost_nothing_run_under_any_budget() -> None:
    llm = TestLLM(price=Price(input_per_token=0.0, output_per_token=0.0))

    rows = build(llm).run(max_cost=1e-9)["default"]["train"]

    assert rows.num_rows == ROWS


@pytest.mark.parametrize("bad", [0, -1.0, "5", True])
def test_a_max_cost_that_is_not_an_amount_is_refused(bad: Any) -> None:
    with pytest.raises(PotstillUserError, match=r"max_cost=.* is not an amount of dollars"):
        Pipeline(max_cost=bad)
    with pytest.raises(PotstillUserError, match=r"max_cost=.* is not an amount of dollars"):
        build(TestLLM()).run(max_cost=bad)


# -- an LLM on its own -------------------------------------------------------------------------


def test_an_llm_on_its_own_sends_nothing_past_its_max_cost(openai_env: FakeServer) -> None:
    llm = openai_llm(max_cost=3.5 * reservation(QUESTIONS[0]))
    llm.load()

    kwargs = llm.get_generation_kwargs()  # max_new_tokens, the reservation's output part

    outputs = llm.generate_outputs(
        [[{"role": "user", "content": q}] for q in QUESTIONS[:8]], **kwargs
    )

    sent = len(openai_env.requests)
    assert 0 < sent < 8
    assert sum(1 for output in outputs if output[0] is not None) == sent
    refused = [output.errors[0] for output in outputs if output[0] is None]
    assert refused and all(
        error.startswith("BudgetExceededError: not sent: max_cost=") for error in refused
    )
    assert llm.usage.cost <= llm.max_cost
    # still spent for this LLM: later calls send nothing either
    llm.generate_outputs([[{"role": "user", "content": QUESTIONS[9]}]], **kwargs)
    assert len(openai_env.requests) == sent
