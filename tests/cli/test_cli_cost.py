"""`potstill pipeline run` prints what the run's LLMs cost, and `--max-cost` stops a run
gracefully (exit code 3, nothing saved); the same command with a higher limit resumes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.cli.helpers import QUESTIONS, build_pipeline, run

from potstill.distiset import Distiset
from potstill.llms.budget import dollars
from potstill.llms.pricing import token_cost

STEP = "text_generation"


def test_the_end_of_run_output_has_rows_and_cost(
    config_file: Path, openai_env: Any, tmp_path: Path, invoke: Any
) -> None:
    output = tmp_path / "out"

    result = run(invoke, config_file, output, "--max-cost", "5")

    assert result.exit_code == 0, result.output
    rows = Distiset.load_from_disk(output)["default"]["train"]
    stats = [m[f"statistics_{STEP}"] for m in rows["potstill_metadata"]]
    total = sum(
        token_cost(
            "gpt-4o-mini",
            "openai",
            input_tokens=s["input_tokens"],
            output_tokens=s["output_tokens"],
        )
        for s in stats
    )
    assert "LLM cost" in result.output
    table = next(line for line in result.output.splitlines() if "OpenAILLM gpt-4o-mini" in line)
    tokens = sum(s["input_tokens"] for s in stats), sum(s["output_tokens"] for s in stats)
    cells = [cell.strip() for cell in table.split("│")]
    assert cells[3:7] == [str(len(QUESTIONS)), "0", str(tokens[0]), str(tokens[1])]
    assert f"{dollars(total)}" in table
    assert f"Total: {dollars(total)}" in result.output
    datasets = next(line for line in result.output.splitlines() if "│ default" in line)
    assert [cell.strip() for cell in datasets.split("│")][3] == str(len(QUESTIONS))  # Rows


def test_max_cost_stops_the_run_and_a_higher_one_resumes(
    openai_env: Any, tmp_path: Path, invoke: Any
) -> None:
    config = build_pipeline(max_concurrent_requests=1).save(tmp_path / "p.yaml", format="yaml")
    output = tmp_path / "out"
    # $0.001 a token; a request reserves its prompt (~11 tokens) + 20 output tokens, $0.031,
    # and costs ~$0.011: the first fits in $0.035, the second does not.
    params = [
        "--param",
        f'{STEP}.llm.price={{"input_per_million": 1000, "output_per_million": 1000}}',
        "--param",
        f"{STEP}.llm.generation_kwargs.max_new_tokens=20",
    ]

    stopped = run(invoke, config, output, *params, "--max-cost", "0.035")

    assert stopped.exit_code == 3, stopped.output
    assert len(openai_env.requests) == 1  # the second question does not fit
    assert "max_cost=$0.0350 of pipeline 'cli-test' reached" in stopped.output
    assert "LLM cost" in stopped.output
    assert f"Nothing was saved to {output}" in stopped.output
    assert "higher --max-cost to resume" in stopped.output
    assert "Traceback" not in stopped.output
    assert not output.exists()

    resumed = run(invoke, config, output, *params, "--max-cost", "10")

    assert resumed.exit_code == 0, resumed.output
    assert len(openai_env.requests) == len(QUESTIONS)  # the answered one is not sent again
    rows = Distiset.load_from_disk(output)["default"]["train"]
    assert all(rows["generation"])
    user_price = [m[f"statistics_{STEP}"] for m in rows["potstill_metadata"]]
    assert [s["cost"] for s in user_price] == [
        (s["input_tokens"] + s["output_tokens"]) * 1e-3 for s in user_price
    ]


def test_a_max_cost_that_is_not_a_positive_amount_is_a_usage_error(
    config_file: Path, openai_env: Any, tmp_path: Path, invoke: Any
) -> None:
    for bad in ("0", "-1", "five"):
        result = run(invoke, config_file, tmp_path / "out", "--max-cost", bad)

        assert result.exit_code == 1, result.output
        assert "--max-cost" in result.output
    assert openai_env.requests == []


def test_a_model_without_a_price_is_refused_under_max_cost(
    openai_env: Any, tmp_path: Path, invoke: Any
) -> None:
    pipeline = build_pipeline()
    pipeline.dag.steps[STEP].llm.model = "no-such-model-x1"
    config = pipeline.save(tmp_path / "p.yaml", format="yaml")

    result = run(invoke, config, tmp_path / "out", "--max-cost", "1")

    assert result.exit_code == 1, result.output
    assert "has no price" in result.output and "STEP.llm.price=" in result.output
    assert openai_env.requests == []
