"""What requests cost: per row (`potstill_metadata`), per LLM (`llm.usage`) and per run
(`pipeline.last_run_cost`, the run's summary line), from genai-prices' table or the user's
price; "no price" (None) where there is none, never a guess. An OpenAILLM runs against the
loopback server, which reports each request's usage."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from tests.fake_server import FakeServer

from potstill.llms import OpenAILLM
from potstill.llms.budget import dollars
from potstill.llms.pricing import Price, TablePrice, llm_provider, token_cost
from potstill.llms.testing import TestLLM
from potstill.llms.usage import tokens_cost
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration
from potstill.steps.tasks.base import METADATA_COLUMN
from potstill.utils.fields import without_execution_fields

QUESTIONS = [f"Question number {i}: what is {i} plus {i}?" for i in range(6)]


def run_pipeline(llm: Any, name: str = "cost", **task: Any) -> tuple[Pipeline, list[dict]]:
    with Pipeline(name=name) as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": q} for q in QUESTIONS], batch_size=3)
        generate = TextGeneration(name="gen", llm=llm, input_batch_size=2, **task)
        load >> generate
    rows = pipeline.run(use_cache=False)["default"]["train"].to_list()
    return pipeline, rows


def statistics(rows: list[dict]) -> list[dict]:
    return [row[METADATA_COLUMN]["statistics_gen"] for row in rows]


def test_each_row_and_the_run_cost_what_the_price_table_says(
    openai_env: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    llm = OpenAILLM(model="gpt-4o-mini")
    caplog.set_level(logging.INFO, logger="potstill.pipeline")

    pipeline, rows = run_pipeline(llm)

    stats = statistics(rows)
    assert all(s["input_tokens"] and s["output_tokens"] for s in stats)
    for s in stats:  # the table's own arithmetic on the tokens the server reported
        expected = token_cost(
            "gpt-4o-mini",
            "openai",
            input_tokens=s["input_tokens"],
            output_tokens=s["output_tokens"],
        )
        assert s["cost"] == pytest.approx(expected, rel=1e-12)
        assert s["cost"] > 0
    total = sum(s["cost"] for s in stats)
    assert llm.usage.cost == pytest.approx(total, rel=1e-12)
    assert llm.usage.unpriced_requests == 0
    run = pipeline.last_run_cost
    assert run is not None and run.cost == pytest.approx(total, rel=1e-12)
    [entry] = run.llms
    assert (entry.steps, entry.llm, entry.model) == (("gen",), "OpenAILLM", "gpt-4o-mini")
    assert entry.usage.requests == len(QUESTIONS) == len(openai_env.requests)
    assert entry.usage.input_tokens == sum(s["input_tokens"] for s in stats)
    summary = [r.getMessage() for r in caplog.records if "request(s) sent" in r.getMessage()]
    assert summary == [f"Pipeline 'cost': {run.describe()}."]
    assert f"cost {dollars(total)}" in summary[0]


def test_a_rerun_from_the_cache_costs_nothing_but_its_rows_keep_their_cost(
    openai_env: FakeServer,
) -> None:
    with Pipeline(name="rerun") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": q} for q in QUESTIONS[:2]])
        load >> TextGeneration(name="gen", llm=OpenAILLM(model="gpt-4o-mini"))
    first = pipeline.run()["default"]["train"].to_list()
    assert pipeline.last_run_cost is not None and pipeline.last_run_cost.cost > 0

    again = pipeline.run()["default"]["train"].to_list()

    assert pipeline.last_run_cost.cost == 0.0
    assert statistics(again) == statistics(first)


def test_an_unknown_model_has_no_price_never_a_guess(openai_env: FakeServer) -> None:
    llm = OpenAILLM(model="no-such-model-x1")

    pipeline, rows = run_pipeline(llm)

    assert [s["cost"] for s in statistics(rows)] == [None] * len(QUESTIONS)
    assert llm.token_price() is None
    assert llm.usage.cost is None and llm.usage.unpriced_requests == len(QUESTIONS)
    assert pipeline.last_run_cost is not None and pipeline.last_run_cost.cost is None
    assert pipeline.last_run_cost.describe().endswith(
        "output tokens, no price for OpenAILLM 'no-such-model-x1' (step gen)"
    )


def test_a_run_with_an_llm_without_a_price_has_no_total_but_names_it() -> None:
    priced = TestLLM(model="priced", price=Price(input_per_token=0.5, output_per_token=0.0))
    with Pipeline(name="mixed") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "one two"}])
        load >> TextGeneration(name="a", llm=priced)
        load >> TextGeneration(name="b", llm=TestLLM(model="free-to-guess"))

    pipeline.run()

    run = pipeline.last_run_cost
    assert run is not None and run.cost is None
    assert [entry.usage.cost for entry in run.llms] == [priced.usage.cost, None]
    assert priced.usage.cost and priced.usage.cost > 0
    assert run.describe().endswith(
        f"cost {dollars(priced.usage.cost)} plus what has no price: "
        "TestLLM 'free-to-guess' (step b)"
    )


def test_an_llm_of_no_known_provider_is_not_priced_by_its_model_name() -> None:
    # a test LLM named like an OpenAI model is not served by OpenAI
    assert TestLLM(model="gpt-4o-mini").token_price() is None
    assert llm_provider(TestLLM) is None


def test_the_users_price_wins_over_the_table(openai_env: FakeServer) -> None:
    llm = OpenAILLM(model="gpt-4o-mini", price=Price.per_million(input=1000.0, output=2000.0))

    _, rows = run_pipeline(llm)

    for s in statistics(rows):
        expected = s["input_tokens"] * 1e-3 + s["output_tokens"] * 2e-3
        assert s["cost"] == pytest.approx(expected, rel=1e-12)
    assert llm.usage.cost == pytest.approx(sum(s["cost"] for s in statistics(rows)))


def test_a_price_makes_any_llm_report_cost() -> None:
    llm = TestLLM(price={"input_per_million": 1_000_000, "output_per_million": 0})

    _, rows = run_pipeline(llm)

    assert [s["cost"] for s in statistics(rows)] == [
        float(s["input_tokens"]) for s in statistics(rows)
    ]


def test_native_n_puts_the_requests_cost_on_its_first_generation(openai_env: FakeServer) -> None:
    llm = OpenAILLM(model="gpt-4o-mini")

    _, rows = run_pipeline(llm, num_generations=2, group_generations=True)

    for s in statistics(rows):
        assert s["cost"][1] is None and s["input_tokens"][1] is None
        assert s["cost"][0] == pytest.approx(
            token_cost(
                "gpt-4o-mini",
                "openai",
                input_tokens=s["input_tokens"][0],
                output_tokens=s["output_tokens"][0],
            )
        )


def test_price_and_max_cost_are_kept_in_dumps_but_change_no_answer() -> None:
    plain = OpenAILLM(model="gpt-4o-mini")
    priced = OpenAILLM(
        model="gpt-4o-mini", price=Price.per_million(input=1.0, output=2.0), max_cost=3.0
    )

    dump = priced.dump()
    again = OpenAILLM.from_dict(dump)

    assert dump["price"] == {"input_per_token": 1e-6, "output_per_token": 2e-6}
    assert again.price == priced.price and again.max_cost == 3.0
    assert priced.cache_identity() == plain.cache_identity()
    assert without_execution_fields(priced.dump(), OpenAILLM) == without_execution_fields(
        plain.dump(), OpenAILLM
    )


def test_price_and_max_cost_are_runtime_parameters() -> None:
    llm = OpenAILLM(model="gpt-4o-mini")

    llm.set_runtime_parameters(
        {"price": {"input_per_million": 0.5, "output_per_million": 1.5}, "max_cost": 2}
    )

    assert llm.price == Price.per_million(input=0.5, output=1.5)
    assert llm.max_cost == 2.0
    assert isinstance(OpenAILLM(model="gpt-4o-mini").token_price(), TablePrice)
    assert llm.token_price() == llm.price


def test_an_llm_that_sends_batch_jobs_is_priced_at_the_batch_price() -> None:
    online = OpenAILLM(model="gpt-4o-mini", api_key="k")
    batched = OpenAILLM(model="gpt-4o-mini", api_key="k", use_offline_batch_generation=True)

    assert batched.token_price() == online.token_price(batch=True)
    assert online.token_price() == online.token_price(batch=False)
    cheaper = tokens_cost(batched.token_price(), 1_000_000, 1_000_000)
    full = tokens_cost(online.token_price(), 1_000_000, 1_000_000)
    assert cheaper is not None and full is not None and cheaper < full
