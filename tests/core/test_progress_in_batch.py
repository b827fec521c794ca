"""Progress inside a batch: the display moves as inputs finish and ends at the exact row
count; `datasets`' own progress bars stay quiet during a run and a save."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, List

import pytest
from pydantic import validate_call
from tests.core.fakes import EchoLLM, RecordingProgress, last_user_text
from tests.fake_server import FakeServer

import potstill.pipeline.base as pipeline_base
from potstill.distiset import Distiset
from potstill.llms import LLM, AsyncLLM, OpenAILLM
from potstill.llms.typing import GenerateOutput
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts, Step, StepInput, StepOutput
from potstill.steps.tasks import TextGeneration
from potstill.steps.tasks.typing import ChatType
from potstill.utils import batch_progress
from potstill.utils.batch_progress import current_batch_progress, report_progress


@pytest.fixture
def display(monkeypatch: pytest.MonkeyPatch) -> type[RecordingProgress]:
    """Runs get a `RecordingProgress`; every report reaches it at once (no throttling)."""
    monkeypatch.setattr(pipeline_base, "Progress", RecordingProgress)
    monkeypatch.setattr(batch_progress, "_MIN_INTERVAL_S", 0.0)
    RecordingProgress.instances.clear()
    return RecordingProgress


def _pipeline(name: str, texts: list[str], llm: LLM, batch: int, **task: Any) -> Pipeline:
    with Pipeline(name=name) as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": t} for t in texts], batch_size=len(texts))
        load >> TextGeneration(name="gen", llm=llm, input_batch_size=batch, **task)
    return pipeline


class OneByOneLLM(LLM):
    """A local-model stand-in whose `generate` handles its inputs one after another (like
    llama.cpp), reporting each; it notes what the display showed as each input began. A
    text containing `fail` makes the whole call raise, after the inputs before it."""

    seen: ClassVar[list[int]] = []

    @property
    def model_name(self) -> str:
        return "one-by-one"

    @validate_call
    def generate(self, inputs: List[ChatType], num_generations: int = 1) -> List[GenerateOutput]:
        """Echoes each input.

        Args:
            inputs: the conversations.
            num_generations: generations per input.
        """
        outputs: List[GenerateOutput] = []
        for conversation in inputs:
            OneByOneLLM.seen.append(RecordingProgress.instances[-1].shown("gen"))
            text = last_user_text(conversation)
            if "fail" in text:
                raise RuntimeError(f"cannot answer {text!r}")
            outputs.append([f"{text} #{i}" for i in range(num_generations)])
            report_progress()
        return outputs


def test_a_local_llm_moves_the_display_with_each_finished_input(
    display: type[RecordingProgress],
) -> None:
    OneByOneLLM.seen = []
    texts = [f"q{i}" for i in range(6)]
    pipeline = _pipeline("one-by-one", texts, OneByOneLLM(), batch=3)

    train = pipeline.run()["default"]["train"]

    assert train["generation"] == [f"{t} #0" for t in texts]
    # Input i of a batch starts with the inputs before it on the display, not only the
    # batches before it ([0, 0, 0, 3, 3, 3] when progress moved per batch only).
    assert OneByOneLLM.seen == [0, 1, 2, 3, 4, 5]
    [progress] = display.instances
    assert progress.shown("gen") == 6
    assert all(change >= 0 for change in progress.changes["gen"])


def test_a_failed_call_takes_its_reports_back_before_its_inputs_are_retried(
    display: type[RecordingProgress],
) -> None:
    OneByOneLLM.seen = []
    texts = ["a", "b", "fail here", "d"]
    pipeline = _pipeline("retried", texts, OneByOneLLM(), batch=4)

    train = pipeline.run()["default"]["train"]

    assert train["generation"] == ["a #0", "b #0", None, "d #0"]
    [progress] = display.instances
    totals = progress.running_totals("gen")
    # "a" and "b" were reported, then the call raised: they are taken back, and each input
    # counts once more when it is retried alone. The display never shows more rows than
    # the batch has, and ends at the rows produced.
    assert max(totals) <= 4
    assert 2 in totals and totals[-1] == 4
    assert -2 in progress.changes["gen"]


def test_a_batch_generated_at_once_counts_when_its_call_returns(
    display: type[RecordingProgress],
) -> None:
    pipeline = _pipeline("at-once", ["a", "b", "c", "d", "e"], EchoLLM(), batch=2)

    pipeline.run()

    [progress] = display.instances
    assert progress.totals["gen"] == 5
    assert progress.shown("gen") == 5
    assert all(change >= 0 for change in progress.changes["gen"])


def test_an_async_llm_moves_the_display_with_each_answered_request(
    openai_env: FakeServer, display: type[RecordingProgress]
) -> None:
    texts = [f"question {i}" for i in range(4)]
    llm = OpenAILLM(model="gpt-4", max_concurrent_requests=1)
    pipeline = _pipeline("async-requests", texts, llm, batch=4)

    train = pipeline.run()["default"]["train"]

    assert train["generation"] == [f"Echo: {t}" for t in texts]
    [progress] = display.instances
    # One row per answered request, then nothing left for the batch itself ([4] before).
    assert [change for change in progress.changes["gen"] if change] == [1, 1, 1, 1]
    assert progress.shown("gen") == 4


class OneAnswerLLM(AsyncLLM):
    """An async LLM without `n`: `num_generations` answers take that many requests."""

    @property
    def model_name(self) -> str:
        return "one-answer"

    async def agenerate(self, input: ChatType) -> list[str]:  # type: ignore[override]
        """Echoes the input.

        Args:
            input: the conversation.
        """
        return [last_user_text(input)]


def test_each_of_several_generations_counts_as_its_row(
    display: type[RecordingProgress],
) -> None:
    llm = OneAnswerLLM(max_concurrent_requests=1)
    pipeline = _pipeline("generations", ["a", "b"], llm, batch=2, num_generations=3)

    train = pipeline.run()["default"]["train"]

    assert train.num_rows == 6
    [progress] = display.instances
    assert [change for change in progress.changes["gen"] if change] == [1] * 6


def test_batches_read_back_from_the_store_count_once(display: type[RecordingProgress]) -> None:
    texts = [f"q{i}" for i in range(5)]
    pipeline = _pipeline("resumed", texts, EchoLLM(), batch=2)
    pipeline.run()
    # As if the run had been killed after storing every batch: nothing is marked complete.
    for marker in pipeline.cache_dir.rglob("_complete.json"):
        marker.unlink()
    llm = EchoLLM()
    pipeline = _pipeline("resumed", texts, llm, batch=2)

    pipeline.run()

    assert llm._calls == []  # every batch came from the store
    second = display.instances[-1]
    assert second.shown("gen") == 5
    assert second.shown("load_data_from_dicts_0") == 5


class SeesTracker(Step):
    """Notes whether the batch it processes has a progress tracker."""

    seen: ClassVar[list[bool]] = []

    @property
    def inputs(self) -> list[str]:
        return ["instruction"]

    def process(self, inputs: StepInput) -> StepOutput:
        SeesTracker.seen.append(current_batch_progress() is not None)
        yield inputs


def test_without_a_display_no_batch_is_tracked() -> None:
    SeesTracker.seen = []
    with Pipeline(name="untracked", show_progress=False) as pipeline:
        LoadDataFromDicts(data=[{"instruction": "x"}]) >> SeesTracker()

    pipeline.run()

    assert SeesTracker.seen == [False]


def test_the_display_has_an_eta_column() -> None:
    from rich.console import Console
    from rich.progress import TimeRemainingColumn

    from potstill.pipeline.progress import Progress

    progress = Progress(enabled=True)
    progress.start({"gen": 10})
    try:
        progress.advance("gen", 4)
        live = progress._progress
        assert any(isinstance(column, TimeRemainingColumn) for column in live.columns)
        console = Console(record=True, width=150)
        console.print(live.make_tasks_table(live.tasks))
        assert "ETA" in console.export_text()
    finally:
        progress.stop()


# -- datasets' progress bars --------------------------------------------------------------------


class BarsState(Step):
    """Notes whether `datasets`' progress bars are off while it runs."""

    seen: ClassVar[list[bool]] = []

    @property
    def inputs(self) -> list[str]:
        return ["instruction"]

    def process(self, inputs: StepInput) -> StepOutput:
        from datasets.utils.tqdm import are_progress_bars_disabled

        BarsState.seen.append(are_progress_bars_disabled())
        yield inputs


@pytest.fixture
def bars_setting() -> Any:
    """Restores `datasets`' progress-bar setting after the test."""
    from datasets.utils.tqdm import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    before = are_progress_bars_disabled()
    yield enable_progress_bars, disable_progress_bars, are_progress_bars_disabled
    (disable_progress_bars if before else enable_progress_bars)()


@pytest.mark.parametrize("user_disabled", [False, True])
def test_datasets_bars_are_off_during_a_run_and_the_users_setting_comes_back(
    user_disabled: bool, bars_setting: Any
) -> None:
    enable, disable, disabled = bars_setting
    (disable if user_disabled else enable)()
    BarsState.seen = []
    with Pipeline(name="quiet-bars") as pipeline:
        LoadDataFromDicts(data=[{"instruction": "x"}]) >> BarsState()

    pipeline.run()

    assert BarsState.seen == [True]
    assert disabled() is user_disabled


def test_saving_a_distiset_prints_no_datasets_bar(
    bars_setting: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    enable, _, disabled = bars_setting
    enable()
    with Pipeline(name="quiet-save") as pipeline:
        LoadDataFromDicts(data=[{"instruction": "x"}, {"instruction": "y"}]) >> BarsState()
    distiset = pipeline.run()
    capfd.readouterr()

    distiset.save_to_disk(tmp_path / "saved")

    captured = capfd.readouterr()
    assert "Saving the dataset" not in captured.err + captured.out
    assert disabled() is False
    assert Distiset.load_from_disk(tmp_path / "saved")["default"]["train"].num_rows == 2
