"""Pipeline.run: Distiset shape, the per-run store and the cache, dry_run, failures,
progress and logging."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Optional

import pytest
from datasets import Dataset, DatasetDict
from tests.core.fakes import EchoLLM, RecordingStep
from tests.fake_server import FakeServer

from potstill.distiset import Distiset
from potstill.errors import PotstillUserError
from potstill.llms import OpenAILLM
from potstill.llms.pricing import token_cost
from potstill.pipeline import Pipeline
from potstill.pipeline.engine import PipelineRunError
from potstill.pipeline.step_batches import StepBatches
from potstill.steps import GeneratorStep, LoadDataFromDicts, Step, StepInput, StepOutput
from potstill.steps.tasks import TextGeneration
from potstill.steps.tasks.base import METADATA_COLUMN

QUESTIONS = ["What's the capital of Spain?", "hello", "say hello", "What is 2 + 2?"]
ANSWERS = [
    "The capital of Spain is Madrid.",
    "Hello! How can I help you today?",
    "Hello!",
    "2 + 2 equals 4.",
]


def openai_pipeline(
    name: str = "openai-run", **task_kwargs: Any
) -> tuple[Pipeline, TextGeneration]:
    with Pipeline(name=name) as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": q} for q in QUESTIONS], batch_size=2)
        generate = TextGeneration(llm=OpenAILLM(model="gpt-4"), input_batch_size=2, **task_kwargs)
        load >> generate
    return pipeline, generate


# -- Distiset shape ----------------------------------------------------------------------------------


def test_single_leaf_is_named_default(openai_env: FakeServer) -> None:
    pipeline, generate = openai_pipeline()

    distiset = pipeline.run()

    assert isinstance(distiset, Distiset)
    assert list(distiset) == ["default"]
    assert isinstance(distiset["default"], DatasetDict)
    assert list(distiset["default"]) == ["train"]
    train = distiset["default"]["train"]
    assert isinstance(train, Dataset)
    assert train.num_rows == 4
    assert train["instruction"] == QUESTIONS
    assert train["generation"] == ANSWERS
    assert train["model_name"] == ["gpt-4"] * 4
    assert train.column_names == ["instruction", "generation", "model_name", METADATA_COLUMN]
    assert train[0][METADATA_COLUMN][f"statistics_{generate.name}"] == {
        "input_tokens": 5,
        "output_tokens": 6,
        "cost": pytest.approx(token_cost("gpt-4", "openai", input_tokens=5, output_tokens=6)),
    }


def test_several_leaves_are_named_by_step() -> None:
    with Pipeline(name="leaves") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "a"}, {"instruction": "b"}])
        generate = TextGeneration(name="generate", llm=EchoLLM())
        copy = RecordingStep(name="copy")
        load >> [generate, copy]

    distiset = pipeline.run()

    assert sorted(distiset) == ["copy", "generate"]
    assert distiset["generate"]["train"]["generation"] == ["a #0", "b #0"]
    assert distiset["copy"]["train"]["copy"] == ["a", "b"]
    assert "generation" not in distiset["copy"]["train"].column_names


def test_enable_metadata_false_drops_the_metadata_column() -> None:
    with Pipeline(name="no-metadata", enable_metadata=False) as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "a"}])
        load >> TextGeneration(llm=EchoLLM())

    train = pipeline.run()["default"]["train"]

    assert train.column_names == ["instruction", "generation", "model_name"]


def test_rows_keep_their_order_across_batches_and_concurrency(openai_env: FakeServer) -> None:
    texts = [f"row {i} [[delay={0.05 * ((7 - i) % 4)}]]" for i in range(8)]
    with Pipeline(name="order") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": t} for t in texts], batch_size=3)
        load >> TextGeneration(llm=OpenAILLM(model="gpt-4"), input_batch_size=2)

    train = pipeline.run()["default"]["train"]

    assert train["generation"] == [f"Echo: row {i}" for i in range(8)]


# -- the store and the cache ------------------------------------------------------------------


def test_every_finished_batch_is_in_the_per_run_store(openai_env: FakeServer) -> None:
    pipeline, generate = openai_pipeline(name="stored")

    pipeline.run()

    root = Path(os.environ["POTSTILL_CACHE_DIR"]) / "stored"
    assert pipeline.cache_dir == root
    assert (root / "pipeline.yaml").is_file()
    for step_name, batches, rows in ((generate.name, 2, 4), ("load_data_from_dicts_0", 2, 4)):
        [folder] = [p for p in (root / "steps").iterdir() if p.name.startswith(f"{step_name}-")]
        files = sorted(
            p.name
            for p in folder.iterdir()
            # the request journal and the manifest (checksums, completion) are not batches
            if p.name not in ("requests.jsonl", "manifest.jsonl")
        )
        assert files, folder
        assert all(name.endswith(".arrow") for name in files)
        # the file names cover batches 0..batches-1 (a file may hold a run of batches)
        covered: set[int] = set()
        for name in files:
            stem = name.split(".")[0]
            first, _, last = stem.partition("-")
            covered.update(range(int(first), int(last or first) + 1))
        assert covered == set(range(batches))
        assert StepBatches(folder).completion() == {"batches": batches, "rows": rows}
    assert "test-key" not in (root / "pipeline.yaml").read_text()  # the API key


def test_use_cache_rerun_of_a_completed_pipeline_makes_no_requests(openai_env: FakeServer) -> None:
    pipeline, _ = openai_pipeline(name="cached")
    first = pipeline.run()
    requests_after_first = openai_env.state.request_count
    assert requests_after_first == 4

    again = pipeline.run()

    assert openai_env.state.request_count == requests_after_first
    assert again["default"]["train"].to_list() == first["default"]["train"].to_list()


def test_use_cache_false_runs_again(openai_env: FakeServer) -> None:
    pipeline, _ = openai_pipeline(name="uncached")
    pipeline.run()

    distiset = pipeline.run(use_cache=False)

    assert openai_env.state.request_count == 8
    assert distiset["default"]["train"]["generation"] == ANSWERS


def test_changed_parameters_are_not_served_from_the_cache(openai_env: FakeServer) -> None:
    pipeline, generate = openai_pipeline(name="changed")
    pipeline.run()

    distiset = pipeline.run(
        params={generate.name: {"llm": {"generation_kwargs": {"temperature": 0.1}}}}
    )

    assert openai_env.state.request_count == 8
    assert [r.body["temperature"] for r in openai_env.requests[4:]] == [0.1] * 4
    assert distiset["default"]["train"]["generation"] == ANSWERS


def test_rerun_only_redoes_the_changed_step() -> None:
    with Pipeline(name="partial") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "a"}, {"instruction": "b"}])
        first = TextGeneration(name="first", llm=EchoLLM())
        second = TextGeneration(
            name="second",
            llm=EchoLLM(),
            input_mappings={"instruction": "generation"},
            output_mappings={"generation": "again"},
        )
        load >> first >> second
    pipeline.run()
    first_calls, second_calls = len(first.llm._calls), len(second.llm._calls)

    distiset = pipeline.run(params={"second": {"llm": {"generation_kwargs": {"suffix": "!"}}}})

    assert len(first.llm._calls) == first_calls  # unchanged upstream step: read from the store
    assert len(second.llm._calls) > second_calls
    assert distiset["default"]["train"]["again"] == ["a #0 #0!", "b #0 #0!"]


# -- dry_run ------------------------------------------------------------------------------------------


def test_dry_run_processes_one_batch_in_its_own_temporary_cache(openai_env: FakeServer) -> None:
    pipeline, _ = openai_pipeline(name="dry")

    distiset = pipeline.dry_run()

    assert distiset["default"]["train"]["instruction"] == QUESTIONS[:1]
    assert distiset["default"]["train"]["generation"] == ANSWERS[:1]
    assert openai_env.state.request_count == 1
    assert not pipeline.cache_dir.exists()  # nothing written to the real cache

    full = pipeline.run()
    assert full["default"]["train"]["generation"] == ANSWERS
    assert openai_env.state.request_count == 5


def test_dry_run_leaves_the_generator_batch_size_as_it_was() -> None:
    with Pipeline(name="dry-3") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": str(i)} for i in range(6)], batch_size=3)
        record = RecordingStep(input_batch_size=3)
        load >> record

    assert pipeline.dry_run()["default"]["train"].num_rows == 1
    assert load.batch_size == 3

    pipeline.run()
    [folder] = (pipeline.cache_dir / "steps").glob(f"{load.name}-*")
    assert StepBatches(folder).completion() == {"batches": 2, "rows": 6}


def test_dry_run_batch_size_and_params(openai_env: FakeServer) -> None:
    pipeline, generate = openai_pipeline(name="dry-2")

    distiset = pipeline.dry_run(
        params={generate.name: {"llm": {"generation_kwargs": {"max_new_tokens": 3}}}}, batch_size=3
    )

    assert distiset["default"]["train"]["instruction"] == QUESTIONS[:3]
    assert [r.body["max_tokens"] for r in openai_env.requests] == [3, 3, 3]


# -- failures ------------------------------------------------------------------------------------------


class Fragile(Step):
    """Fails on batches holding a row whose instruction contains `crash`."""

    @property
    def inputs(self) -> list[str]:
        return ["instruction"]

    @property
    def outputs(self) -> list[str]:
        return ["checked"]

    def process(self, inputs: StepInput) -> StepOutput:
        if any("crash" in row["instruction"] for row in inputs):
            raise RuntimeError("fragile step crashed")
        yield [{**row, "checked": True} for row in inputs]


def test_a_failing_batch_gives_none_outputs_and_the_run_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with Pipeline(name="fragile") as pipeline:
        load = LoadDataFromDicts(
            data=[{"instruction": t} for t in ("a", "b", "crash", "d")], batch_size=2
        )
        fragile = Fragile(name="fragile", input_batch_size=2)
        load >> fragile

    with caplog.at_level(logging.WARNING, logger="potstill"):
        train = pipeline.run()["default"]["train"]

    assert train["instruction"] == ["a", "b", "crash", "d"]
    assert train["checked"] == [True, True, None, None]
    errors = [row[METADATA_COLUMN] for row in train.to_list()[2:]]
    assert all("fragile step crashed" in e["error_fragile"] for e in errors)
    warning = next(r.getMessage() for r in caplog.records if "fragile" in r.getMessage())
    assert "batch 1" in warning and "rows 2-3" in warning


def test_failed_generations_are_logged_with_their_dataset_row(
    openai_env: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    texts = [f"row {i}" for i in range(7)]
    texts[5] = "row 5 [[status=500]]"
    with Pipeline(name="row-index") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": t} for t in texts], batch_size=2)
        generate = TextGeneration(llm=OpenAILLM(model="gpt-4", max_retries=0), input_batch_size=2)
        load >> generate

    with caplog.at_level(logging.WARNING, logger="potstill"):
        train = pipeline.run()["default"]["train"]

    assert train["generation"][5] is None
    assert train["generation"][4] == "Echo: row 4"
    assert "500" in train[5][METADATA_COLUMN][f"error_{generate.name}"]
    [failure] = [r.getMessage() for r in caplog.records if r.name.startswith("potstill.llm")]
    assert "row 5" in failure


def test_sync_llm_failures_are_logged_with_their_dataset_row(
    caplog: pytest.LogCaptureFixture,
) -> None:
    texts = ["a", "b", "c", "fail here", "e"]
    with Pipeline(name="row-index-sync") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": t} for t in texts], batch_size=2)
        load >> TextGeneration(llm=EchoLLM(), input_batch_size=2)

    with caplog.at_level(logging.WARNING, logger="potstill"):
        train = pipeline.run()["default"]["train"]

    assert train["generation"] == ["a #0", "b #0", "c #0", None, "e #0"]
    [failure] = [r.getMessage() for r in caplog.records if r.name.startswith("potstill.llm")]
    assert "row 3" in failure


# -- failed rows ------------------------------------------------------------------------------------


def test_failed_rows_counts_every_row_a_rejected_key_failed(
    openai_env: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline, generate = openai_pipeline(name="wrong-key")
    generate.llm.api_key = "sk-not-the-right-one"  # type: ignore[assignment]

    with caplog.at_level(logging.WARNING, logger="potstill"):
        distiset = pipeline.run()

    failed = distiset.failed_rows
    assert failed == {generate.name: 4}
    assert (failed.total, failed.total_rows) == (4, 4)
    assert failed.rows == {generate.name: 4}
    assert "401" in failed.examples[generate.name]
    assert failed.describe()[0].startswith(f"{generate.name}: 4 of 4 rows failed (first error:")
    [summary] = [
        r.getMessage()
        for r in caplog.records
        if r.name == "potstill.pipeline" and "output rows failed" in r.getMessage()
    ]
    assert "4 of 4 output rows failed" in summary and generate.name in summary
    assert "sk-not-the-right-one" not in caplog.text

    # A fully cached re-run reports the same counts (read from the stored batches).
    assert pipeline.run().failed_rows == {generate.name: 4}


def test_failed_rows_counts_rows_of_a_batch_a_step_raised_on() -> None:
    with Pipeline(name="fragile-count", enable_metadata=False) as pipeline:
        load = LoadDataFromDicts(
            data=[{"instruction": t} for t in ("a", "b", "crash", "d")], batch_size=2
        )
        load >> Fragile(name="fragile", input_batch_size=2)

    distiset = pipeline.run()

    assert METADATA_COLUMN not in distiset["default"]["train"].column_names
    assert distiset.failed_rows == {"fragile": 2}
    assert (distiset.failed_rows.total, distiset.failed_rows.total_rows) == (2, 4)


def test_a_run_without_failures_has_empty_failed_rows(
    openai_env: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline, generate = openai_pipeline(name="no-failures")

    with caplog.at_level(logging.WARNING, logger="potstill"):
        distiset = pipeline.run()

    assert distiset.failed_rows == {} and not distiset.failed_rows
    assert (distiset.failed_rows.total, distiset.failed_rows.total_rows) == (0, 4)
    assert distiset.failed_rows.rows[generate.name] == 4
    assert not [r for r in caplog.records if r.name == "potstill.pipeline"]


class BrokenGenerator(GeneratorStep):
    @property
    def outputs(self) -> list[str]:
        return ["instruction"]

    def process(self, offset: int = 0) -> Any:
        yield [{"instruction": "first"}], False
        raise OSError("disk on fire")


def test_a_failing_generator_stops_the_run_naming_the_step() -> None:
    with Pipeline(name="broken-generator") as pipeline:
        BrokenGenerator(name="source") >> RecordingStep()

    with pytest.raises(PipelineRunError) as info:
        pipeline.run()

    assert "Generator step 'source' failed" in str(info.value)
    assert "disk on fire" in str(info.value)


class FailsToLoad(RecordingStep):
    def load(self) -> None:
        raise RuntimeError("model file missing")


def test_a_load_failure_names_the_step() -> None:
    with Pipeline(name="load-failure") as pipeline:
        LoadDataFromDicts(data=[{"instruction": "x"}]) >> FailsToLoad(name="needs-model")

    with pytest.raises(PipelineRunError) as info:
        pipeline.run()

    assert "Step 'needs-model' failed to load" in str(info.value)
    assert "model file missing" in str(info.value)


def test_missing_api_key_fails_at_load_naming_the_step_and_env_var(fake_server: FakeServer) -> None:
    with Pipeline(name="no-key") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "x"}])
        load >> TextGeneration(
            name="gen", llm=OpenAILLM(model="gpt-4", base_url=fake_server.openai_base_url)
        )

    with pytest.raises(PotstillUserError) as info:
        pipeline.run()

    assert "'gen'" in str(info.value)
    assert "OPENAI_API_KEY" in str(info.value)
    assert fake_server.state.request_count == 0


# -- progress and logging -------------------------------------------------------------------------------


class _SpyProgress:
    instances: list[_SpyProgress] = []

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.totals: dict[str, Optional[int]] = {}
        self.done: dict[str, int] = {}
        self.finished: list[str] = []
        _SpyProgress.instances.append(self)

    def start(self, steps: dict[str, Optional[int]]) -> None:
        self.totals = dict(steps)

    def advance(self, step: str, rows: int) -> None:
        self.done[step] = self.done.get(step, 0) + rows

    def finish(self, step: str) -> None:
        self.finished.append(step)

    def stop(self) -> None:
        pass


@pytest.mark.parametrize(
    ("show_progress", "env", "expected"),
    [(True, "1", True), (False, "1", False), (True, "0", False)],
)
def test_progress_per_step_can_be_turned_off(
    monkeypatch: pytest.MonkeyPatch, show_progress: bool, env: str, expected: bool
) -> None:
    import potstill.pipeline.base as pipeline_base

    monkeypatch.setattr(pipeline_base, "Progress", _SpyProgress)
    monkeypatch.setenv("POTSTILL_PROGRESS", env)
    _SpyProgress.instances.clear()
    with Pipeline(name="progress", show_progress=show_progress) as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": str(i)} for i in range(5)], batch_size=2)
        load >> TextGeneration(name="gen", llm=EchoLLM(), num_generations=2)

    pipeline.run()

    [progress] = _SpyProgress.instances
    assert progress.enabled is expected
    assert progress.totals == {"load_data_from_dicts_0": 5, "gen": 10}
    assert progress.done == {"load_data_from_dicts_0": 5, "gen": 10}
    assert sorted(progress.finished) == ["gen", "load_data_from_dicts_0"]


def test_rich_progress_display_shows_rows_and_rate() -> None:
    from potstill.pipeline.progress import Progress

    progress = Progress(enabled=True)
    progress.start({"gen": 10})
    progress.advance("gen", 4)
    task = progress._progress.tasks[0]
    assert (task.completed, task.total) == (4, 10)
    assert task.fields["rate"].endswith("rows/s")
    progress.finish("gen")
    assert progress._progress.tasks[0].total == 4
    progress.stop()

    disabled = Progress(enabled=False)
    disabled.start({"gen": 10})
    disabled.advance("gen", 1)
    assert disabled._progress is None


def test_run_logs_through_the_potstill_logger(caplog: pytest.LogCaptureFixture) -> None:
    with Pipeline(name="logging") as pipeline:
        LoadDataFromDicts(data=[{"instruction": "x"}]) >> RecordingStep()

    with caplog.at_level(logging.INFO, logger="potstill"):
        pipeline.run()

    assert any(
        r.name == "potstill.pipeline" and "Running pipeline 'logging'" in r.getMessage()
        for r in caplog.records
    )


def test_logging_setup_uses_rich_and_the_level_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.logging import RichHandler

    from potstill.utils.logging import setup_logging

    root, potstill_logger = logging.getLogger(), logging.getLogger("potstill")
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(potstill_logger, "handlers", [])
    monkeypatch.setattr(potstill_logger, "level", potstill_logger.level)
    monkeypatch.setenv("POTSTILL_LOG_LEVEL", "debug")

    setup_logging()

    assert [type(h) for h in potstill_logger.handlers] == [RichHandler]
    assert potstill_logger.level == logging.DEBUG
    setup_logging()  # idempotent
    assert len(potstill_logger.handlers) == 1


def test_mappings_on_a_task_with_an_async_llm(openai_env: FakeServer) -> None:
    with Pipeline(name="async-mappings") as pipeline:
        load = LoadDataFromDicts(data=[{"prompt": q} for q in QUESTIONS[:2]])
        generate = TextGeneration(
            llm=OpenAILLM(model="gpt-4"),
            input_mappings={"instruction": "prompt"},
            output_mappings={"generation": "answer", "model_name": "model"},
        )
        load >> generate

    train = pipeline.run()["default"]["train"]

    assert train.column_names[:3] == ["prompt", "answer", "model"]
    assert train["answer"] == ANSWERS[:2]
    assert train["model"] == ["gpt-4", "gpt-4"]
    assert "instruction" not in train.column_names


def test_an_input_mapping_reads_a_column_under_the_tasks_name_and_keeps_its_own_name() -> None:
    # distilabel's rule: `input_mappings` renames for the task only; the column keeps its
    # name downstream. `output_mappings` renames for good.
    with Pipeline(name="mapping-names") as pipeline:
        load = LoadDataFromDicts(data=[{"prompt": "first"}, {"prompt": "second"}])
        generate = TextGeneration(
            llm=EchoLLM(),
            input_mappings={"instruction": "prompt"},
            output_mappings={"generation": "answer"},
        )
        # Downstream, the prompt is still `prompt`: this step reads it as its `instruction`.
        record = RecordingStep(input_mappings={"instruction": "prompt"})
        load >> generate >> record

    train = pipeline.run(use_cache=False)["default"]["train"]

    assert "instruction" not in train.column_names
    assert "generation" not in train.column_names
    assert train["prompt"] == ["first", "second"]
    # The task read `prompt` as its instruction (the echo LLM answers with it).
    assert train["answer"] == ["first #0", "second #0"]
    assert train["copy"] == ["first", "second"]
    # The next step received `prompt` and `answer` (seen under its own input name).
    received = record._batches[0][0]
    assert (received["instruction"], received["answer"]) == ("first", "first #0")


class SecondGenerationFails(EchoLLM):
    """Answers every first generation; the second fails for inputs that say "flaky"."""

    def generate(self, inputs: list[Any], num_generations: int = 1, **kwargs: Any) -> Any:
        from potstill.llms.typing import Generations

        outputs = []
        for messages in inputs:
            text = messages[-1]["content"]
            parts = [Generations.from_request([f"echo: {text}"])]
            if num_generations > 1:
                parts.append(
                    Generations.failed(1, "boom")
                    if "flaky" in text
                    else Generations.from_request([f"again: {text}"])
                )
            outputs.append(Generations.concat(parts))
        return outputs


@pytest.mark.parametrize("group_generations", [True, False])
def test_failed_rows_count_a_row_only_when_one_of_its_generations_failed(
    group_generations: bool,
) -> None:
    with Pipeline(name=f"grouped-failures-{group_generations}") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": t} for t in ("fine", "flaky", "ok")])
        generate = TextGeneration(
            llm=SecondGenerationFails(),
            num_generations=2,
            group_generations=group_generations,
        )
        load >> generate

    failed = pipeline.run().failed_rows

    # Grouped: one row per input, failed when either generation failed. Ungrouped: one row
    # per generation.
    assert failed == {generate.name: 1}
    assert failed.examples[generate.name] == "boom"
    assert failed.total_rows == (3 if group_generations else 6)
