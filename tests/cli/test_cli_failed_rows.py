"""`potstill pipeline run` tells scripts when rows failed: per-step counts and exit code 2,
unless `--max-failed-rows` accepts them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.cli.helpers import QUESTIONS, build_pipeline, run

from potstill.distiset import Distiset

STEP = "text_generation"
WRONG_KEY = f"{STEP}.llm.api_key=sk-not-the-right-one"


def test_every_row_failing_exits_with_2_and_says_how_many(
    config_file: Path, openai_env: Any, tmp_path: Path, invoke: Any
) -> None:
    output = tmp_path / "out"

    result = run(invoke, config_file, output, "--param", WRONG_KEY)

    assert result.exit_code == 2, result.output
    assert f"{STEP}: 2 of 2 rows failed (first error: AuthenticationError" in result.output
    assert "401" in result.output
    assert "2 of 2 output rows failed" in result.output
    assert "--max-failed-rows" in result.output
    assert "sk-not-the-right-one" not in result.output
    assert "Traceback" not in result.output
    # The datasets are saved all the same, each failed row with its error.
    rows = Distiset.load_from_disk(output)["default"]["train"]
    assert rows["generation"] == [None, None]
    assert all("401" in m[f"error_{STEP}"] for m in rows["potstill_metadata"])


@pytest.mark.parametrize(
    ("limit", "exit_code"),
    [("0", 2), ("1", 2), ("2", 0), ("99%", 2), ("100%", 0)],
)
def test_max_failed_rows_accepts_a_count_or_a_share(
    limit: str, exit_code: int, config_file: Path, openai_env: Any, tmp_path: Path, invoke: Any
) -> None:
    result = run(
        invoke, config_file, tmp_path / "out", "--param", WRONG_KEY, "--max-failed-rows", limit
    )

    assert result.exit_code == exit_code, result.output
    # The counts are printed either way.
    assert f"{STEP}: 2 of 2 rows failed" in result.output


def test_a_share_of_failed_rows_within_the_limit_exits_0(
    openai_env: Any, tmp_path: Path, invoke: Any
) -> None:
    dump_questions = [*QUESTIONS, "Break this one [[status=400]]", "One more?"]
    pipeline = build_pipeline(name="some-fail")
    load = pipeline.dag.steps["load"]
    load.data = [{"instruction": q} for q in dump_questions]  # type: ignore[attr-defined]
    config = pipeline.save(tmp_path / "p.yaml", format="yaml")

    within = run(invoke, config, tmp_path / "a", "--max-failed-rows", "25%")
    beyond = run(invoke, config, tmp_path / "b", "--max-failed-rows", "24%")

    assert within.exit_code == 0, within.output
    assert f"{STEP}: 1 of 4 rows failed" in within.output
    assert beyond.exit_code == 2, beyond.output
    assert "1 of 4 output rows failed; --max-failed-rows 24% accepts 0" in beyond.output


def test_a_run_without_failures_prints_no_failed_rows(
    config_file: Path, openai_env: Any, tmp_path: Path, invoke: Any
) -> None:
    result = run(invoke, config_file, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "rows failed" not in result.output


@pytest.mark.parametrize("limit", ["lots", "-1", "150%", "5 %x"])
def test_a_bad_max_failed_rows_is_a_usage_error_before_anything_runs(
    limit: str, config_file: Path, openai_env: Any, tmp_path: Path, invoke: Any
) -> None:
    result = run(invoke, config_file, tmp_path / "out", "--max-failed-rows", limit)
    assert result.exit_code == 1, result.output
    assert "--max-failed-rows" in result.output and repr(limit) in result.output
    assert openai_env.requests == []


def test_usage_errors_exit_with_1_so_that_2_only_means_failed_rows(
    config_file: Path, tmp_path: Path, invoke: Any
) -> None:
    unknown = invoke("pipeline", "run", "--config", str(config_file), "--no-such-option")
    missing = invoke("pipeline", "run")
    assert unknown.exit_code == 1 and "No such option" in unknown.output
    assert missing.exit_code == 1 and "--config" in missing.output


def test_failed_rows_beyond_the_limit_are_not_pushed(
    config_file: Path, openai_env: Any, tmp_path: Path, invoke: Any, monkeypatch: Any
) -> None:
    pushed: list[str] = []
    monkeypatch.setattr(Distiset, "push_to_hub", lambda self, repo_id, **_: pushed.append(repo_id))

    result = run(
        invoke, config_file, tmp_path / "out", "--param", WRONG_KEY, "--repo-id", "me/data"
    )

    assert result.exit_code == 2, result.output
    assert pushed == []
    assert "Nothing was pushed" in result.output and "me/data" in result.output


def test_running_again_after_the_fix_retries_only_the_failed_rows(
    config_file: Path, openai_env: Any, tmp_path: Path, invoke: Any
) -> None:
    failed = run(invoke, config_file, tmp_path / "first", "--param", WRONG_KEY)
    assert failed.exit_code == 2, failed.output
    assert "run the same command again: it retries the failed rows only" in failed.output
    sent_before = len(openai_env.requests)

    fixed = run(invoke, config_file, tmp_path / "second")  # the right key, from the env

    assert fixed.exit_code == 0, fixed.output
    assert len(openai_env.requests) - sent_before == 2  # the two failed rows, once each
    rows = Distiset.load_from_disk(tmp_path / "second")["default"]["train"]
    assert all(isinstance(text, str) and text for text in rows["generation"])
