"""A rerun retries the rows that failed (and only them) and keeps the answered ones."""

from __future__ import annotations

import importlib
import json
import logging
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from tests.fake_server import FakeServer, Fault
from tests.reliability.helpers import (
    assert_exactly_once_and_aligned,
    generation_pipeline,
    make_llm,
)

from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts, Step, StepInput, StepOutput
from potstill.steps.tasks import TextGeneration

ROWS = 30


def ok_requests(server: FakeServer, since: int = 0) -> list[str]:
    return [r.body["messages"][-1]["content"] for r in server.requests[since:] if r.outcome == "ok"]


def test_a_run_with_a_wrong_api_key_is_retried_once_the_key_is_fixed(
    fake_server: FakeServer,
) -> None:
    pipeline, task = generation_pipeline(fake_server, ROWS)
    task.llm.api_key = "wrong-key"  # type: ignore[assignment]
    rows = pipeline.run()["default"]["train"]
    assert rows["generation"] == [None] * ROWS
    assert ok_requests(fake_server) == []

    task.llm.api_key = "test-key"  # type: ignore[assignment]
    fake_server.reset()
    assert_exactly_once_and_aligned(pipeline.run()["default"]["train"], ROWS)
    assert len(fake_server.requests) == ROWS


def test_after_an_outage_only_the_failed_rows_are_sent_again(
    fake_server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    fake_server.configure(seed=3, faults=[Fault(status=503, ratio=0.3)])
    pipeline, task = generation_pipeline(fake_server, ROWS, max_retries=0)
    first = pipeline.run()["default"]["train"]
    failed = [i for i, text in enumerate(first["generation"]) if text is None]
    assert 0 < len(failed) < ROWS
    # Failed requests are never remembered as answers: the journal holds the others only.
    [folder] = (pipeline.cache_dir / "steps").glob(f"{task.name}-*")
    journal = (folder / "requests.jsonl").read_bytes().splitlines()
    assert len(journal) == ROWS - len(failed)
    assert all(json.loads(line)["t"][0] is not None for line in journal)

    fake_server.reset()  # the outage is over
    with caplog.at_level(logging.INFO, logger="potstill"):
        second = pipeline.run()["default"]["train"]
    assert_exactly_once_and_aligned(second, ROWS)
    assert sorted(ok_requests(fake_server)) == sorted(f"q{i}" for i in failed)
    assert f"retrying {len(failed)} row(s) that failed in an earlier run" in caplog.text

    fake_server.reset()
    assert_exactly_once_and_aligned(pipeline.run()["default"]["train"], ROWS)
    assert fake_server.requests == []  # nothing left to retry


def test_downstream_steps_recompute_what_depends_on_a_retried_row(
    fake_server: FakeServer,
) -> None:
    with Pipeline(name="retry-chain") as pipeline:
        data = [{"instruction": f"q{i}"} for i in range(ROWS)]
        data[13]["instruction"] = "q13 [[fail_first=1 status=503]]"  # fails once, then answers
        load = LoadDataFromDicts(data=data, batch_size=10)
        first = TextGeneration(name="first", llm=make_llm(fake_server, max_retries=0))
        second = TextGeneration(
            name="second",
            llm=make_llm(fake_server),
            input_mappings={"instruction": "generation"},
            output_mappings={"generation": "answer", "model_name": "second_model"},
            input_batch_size=7,  # batches cut across the first step's batches
        )
        load >> first >> second
    rows = pipeline.run()["default"]["train"]
    assert rows["answer"][13] is None
    sent = len(fake_server.requests)

    rows = pipeline.run()["default"]["train"]
    expected = [f"Echo: Echo: q{i}" for i in range(ROWS)]
    assert rows["answer"] == expected
    # Only row 13 is asked again, by `first`, then by `second`.
    assert ok_requests(fake_server, since=sent) == [data[13]["instruction"], "Echo: q13"]


class FlakyStep(Step):
    """Adds `length`; raises on the batch holding `q15` while `broken` is set."""

    broken: bool = False
    calls: int = 0

    @property
    def inputs(self) -> list[str]:
        return ["instruction"]

    @property
    def outputs(self) -> list[str]:
        return ["length"]

    def process(self, inputs: StepInput) -> StepOutput:
        """Adds the length of the instruction.

        Args:
            inputs: the rows.
        """
        FlakyStep.calls += 1
        if FlakyStep.broken and any(row["instruction"] == "q15" for row in inputs):
            raise ConnectionError("the database was down")
        yield [{**row, "length": len(row["instruction"])} for row in inputs]


def test_a_batch_whose_step_raised_is_computed_again(fake_server: FakeServer) -> None:
    with Pipeline(name="flaky-step") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": f"q{i}"} for i in range(ROWS)])
        load >> FlakyStep(input_batch_size=10)
    FlakyStep.broken, FlakyStep.calls = True, 0
    rows = pipeline.run()["default"]["train"]
    assert rows["length"][10:20] == [None] * 10
    assert FlakyStep.calls == 3

    FlakyStep.broken, FlakyStep.calls = False, 0
    rows = pipeline.run()["default"]["train"]
    assert rows["length"] == [len(f"q{i}") for i in range(ROWS)]
    assert FlakyStep.calls == 1  # only the batch that had failed


STEP_MODULE = """
from potstill.steps import Step, StepInput, StepOutput, step


@step(inputs=["generation"], outputs=["words"])
def CountWords(inputs: StepInput) -> StepOutput:
    yield [{{**row, "words": {words}}} for row in inputs]


class Shout(Step):
    @property
    def inputs(self):
        return ["generation"]

    @property
    def outputs(self):
        return ["shout"]

    def process(self, inputs: StepInput) -> StepOutput:
        yield [{{**row, "shout": {shout}}} for row in inputs]
"""


def load_steps(folder: Path, words: str, shout: str) -> Any:
    """(Re)writes and (re)imports a module of custom steps."""
    (folder / "custom_steps_i10.py").write_text(
        textwrap.dedent(STEP_MODULE.format(words=words, shout=shout))
    )
    importlib.invalidate_caches()
    if "custom_steps_i10" in sys.modules:
        return importlib.reload(sys.modules["custom_steps_i10"])
    return importlib.import_module("custom_steps_i10")


@pytest.fixture
def step_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("custom_steps_i10", None)


def test_fixed_custom_step_code_recomputes_without_new_requests(
    fake_server: FakeServer, step_folder: Path
) -> None:
    def build(module: Any) -> Pipeline:
        with Pipeline(name="custom-code") as pipeline:
            load = LoadDataFromDicts(data=[{"instruction": f"q{i} x"} for i in range(6)])
            task = TextGeneration(llm=make_llm(fake_server))
            load >> task >> [module.CountWords(name="words"), module.Shout(name="shout")]
        return pipeline

    buggy = load_steps(step_folder, words="0", shout="row['generation'].lower()")
    first = build(buggy).run()
    assert first["words"]["train"]["words"] == [0] * 6
    assert fake_server.state.request_count == 6

    fixed = load_steps(
        step_folder, words="len(row['generation'].split())", shout="row['generation'].upper()"
    )
    second = build(fixed).run()
    assert second["words"]["train"]["words"] == [3] * 6
    assert second["shout"]["train"]["shout"] == [f"ECHO: Q{i} X" for i in range(6)]
    assert fake_server.state.request_count == 6  # the task's batches were reused
