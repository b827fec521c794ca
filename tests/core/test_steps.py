"""Steps: Step / GeneratorStep / GlobalStep / @step / LoadDataFromDicts, columns and
mappings, batch sizes, every yield kept, names, connections."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from tests.core.fakes import EchoLLM, RecordingStep

from potstill.errors import PipelineValidationError, PotstillUserError
from potstill.mixins.runtime_parameters import RuntimeParameter
from potstill.pipeline import Pipeline
from potstill.steps import (
    GeneratorStep,
    GlobalStep,
    LoadDataFromDicts,
    Step,
    StepInput,
    StepOutput,
    step,
)
from potstill.steps.tasks import TextGeneration


def rows(n: int, column: str = "instruction") -> list[dict[str, Any]]:
    return [{column: f"row {i}"} for i in range(n)]


class Upper(Step):
    """Upper-cases `text` into `upper`."""

    @property
    def inputs(self) -> list[str]:
        return ["text"]

    @property
    def outputs(self) -> list[str]:
        return ["upper"]

    def process(self, inputs: StepInput) -> StepOutput:
        yield [{**row, "upper": row["text"].upper()} for row in inputs]


class TwoYields(Step):
    """Yields each batch in two halves: both must be kept."""

    @property
    def inputs(self) -> list[str]:
        return ["instruction"]

    @property
    def outputs(self) -> list[str]:
        return ["half"]

    def process(self, inputs: StepInput) -> StepOutput:
        middle = len(inputs) // 2 or 1
        yield [{**row, "half": "first"} for row in inputs[:middle]]
        yield [{**row, "half": "second"} for row in inputs[middle:]]


class Merge(Step):
    """Joins rows from several predecessors position by position."""

    _received: list[int] = pydantic.PrivateAttr(default_factory=list)

    @property
    def inputs(self) -> list[str]:
        return ["instruction"]

    def process(self, *inputs: StepInput) -> StepOutput:
        self._received.append(len(inputs))
        merged = []
        for group in zip(*inputs):
            row: dict[str, Any] = {}
            for part in group:
                row.update(part)
            merged.append(row)
        yield merged


class Everything(GlobalStep):
    """Counts the rows it received in one call."""

    _calls: list[int] = pydantic.PrivateAttr(default_factory=list)

    @property
    def inputs(self) -> list[str]:
        return ["instruction"]

    @property
    def outputs(self) -> list[str]:
        return ["total"]

    def process(self, inputs: StepInput) -> StepOutput:
        self._calls.append(len(inputs))
        yield [{**row, "total": len(inputs)} for row in inputs]


# -- columns and mappings ------------------------------------------------------------------


def test_inputs_outputs_and_mappings() -> None:
    upper = Upper(input_mappings={"text": "prompt"}, output_mappings={"upper": "shout"})

    assert upper.inputs == ["text"]
    assert upper.outputs == ["upper"]
    assert upper.get_inputs() == ["prompt"]
    assert upper.get_outputs() == ["shout"]

    [out] = list(upper.process_applying_mappings([{"prompt": "hi", "other": 1}]))

    # the input column keeps its dataset name, the output gets its mapped name
    assert out == [{"prompt": "hi", "other": 1, "shout": "HI"}]


@pytest.mark.parametrize(
    ("kwargs", "label", "key"),
    [
        ({"input_mappings": {"txt": "prompt"}}, "input_mappings", "txt"),
        ({"output_mappings": {"upperr": "shout"}}, "output_mappings", "upperr"),
    ],
)
def test_mapping_key_that_is_not_a_column_fails(
    kwargs: dict[str, Any], label: str, key: str
) -> None:
    with Pipeline(name="bad-mapping") as pipeline:
        up = Upper(name="up", **kwargs)  # built: `inputs`/`outputs` may need runtime params
        LoadDataFromDicts(data=[{"text": "a"}]) >> up

    verify = up.verify_inputs_mappings if label == "input_mappings" else up.verify_outputs_mappings
    with pytest.raises(ValueError, match=f"`{label}` key {key!r}"):
        verify()
    with pytest.raises(PipelineValidationError) as info:
        pipeline.run()
    message = str(info.value)
    assert "'up'" in message
    assert f"`{label}` key {key!r}" in message
    assert "['text']" in message or "['upper']" in message


def test_process_introspection() -> None:
    assert Upper().get_process_step_input().name == "inputs"
    assert not Upper().has_multiple_inputs()
    assert Merge().has_multiple_inputs()
    assert LoadDataFromDicts(data=[{"a": 1}]).get_process_step_input() is None


def test_step_kinds() -> None:
    generator = LoadDataFromDicts(data=[{"a": 1}])
    assert (generator.is_generator, generator.is_global, generator.is_normal) == (
        True,
        False,
        False,
    )
    assert (Everything().is_global, Everything().is_normal) == (True, False)
    assert (Upper().is_normal, Upper().is_generator) == (True, False)


# -- LoadDataFromDicts and generator batches ----------------------------------------------------


def test_load_data_from_dicts_batches_and_offset() -> None:
    data = rows(5)
    loader = LoadDataFromDicts(data=data, batch_size=2)

    assert loader.outputs == ["instruction"]
    assert list(loader.process()) == [(data[0:2], False), (data[2:4], False), (data[4:5], True)]
    assert list(loader.process(offset=3)) == [(data[3:5], True)]
    assert list(loader.process(offset=5)) == [([], True)]
    assert loader.data == rows(5)  # not consumed


def test_load_data_from_dicts_requires_data() -> None:
    with pytest.raises(pydantic.ValidationError, match="data"):
        LoadDataFromDicts()
    with pytest.raises(pydantic.ValidationError, match="data"):
        LoadDataFromDicts(data=[])


def test_generator_output_mappings() -> None:
    loader = LoadDataFromDicts(data=[{"a": 1}], output_mappings={"a": "b"})

    assert loader.get_outputs() == ["b"]
    assert list(loader.process_applying_mappings()) == [([{"b": 1}], True)]


def test_input_batch_size_and_batch_size_shape_the_batches() -> None:
    with Pipeline(name="batches") as pipeline:
        load = LoadDataFromDicts(data=rows(10), batch_size=4)
        record = RecordingStep(input_batch_size=3)
        load >> record

    distiset = pipeline.run(use_cache=False)

    assert [len(batch) for batch in record._batches] == [3, 3, 3, 1]
    assert distiset["default"]["train"]["copy"] == [f"row {i}" for i in range(10)]


def test_batch_sizes_set_at_run_time() -> None:
    with Pipeline(name="batches-rt") as pipeline:
        load = LoadDataFromDicts(data=rows(7))
        record = RecordingStep()
        load >> record

    pipeline.run(
        params={load.name: {"batch_size": 2}, record.name: {"input_batch_size": 5}}, use_cache=False
    )

    assert [len(batch) for batch in record._batches] == [5, 2]


# -- process semantics -----------------------------------------------------------------------------


def test_every_yield_of_process_is_kept() -> None:
    with Pipeline(name="two-yields") as pipeline:
        load = LoadDataFromDicts(data=rows(6), batch_size=3)
        halves = TwoYields(input_batch_size=3)
        load >> halves

    train = pipeline.run(use_cache=False)["default"]["train"]

    assert train.num_rows == 6
    assert train["instruction"] == [f"row {i}" for i in range(6)]
    assert train["half"] == ["first", "second", "second", "first", "second", "second"]


def test_global_step_receives_all_rows_in_one_call() -> None:
    with Pipeline(name="global") as pipeline:
        load = LoadDataFromDicts(data=rows(9), batch_size=2)
        everything = Everything(input_batch_size=2)
        load >> everything

    train = pipeline.run(use_cache=False)["default"]["train"]

    assert everything._calls == [9]
    assert train["total"] == [9] * 9


def test_multi_predecessor_step_receives_one_list_per_predecessor() -> None:
    with Pipeline(name="merge") as pipeline:
        load = LoadDataFromDicts(data=rows(4), batch_size=2)
        upper = Upper(input_mappings={"text": "instruction"}, output_mappings={"upper": "up"})
        copy = RecordingStep()
        merge = Merge(input_batch_size=2)
        load >> [upper, copy]
        [upper, copy] >> merge

    train = pipeline.run(use_cache=False)["default"]["train"]

    assert merge._received == [2, 2]
    assert train["instruction"] == [f"row {i}" for i in range(4)]
    assert train["up"] == [f"ROW {i}" for i in range(4)]
    assert train["copy"] == [f"row {i}" for i in range(4)]


# -- the @step decorator ---------------------------------------------------------------------------


@step(inputs=["instruction"], outputs=["length"])
def InstructionLength(
    inputs: StepInput, factor: RuntimeParameter[int] = 1, label: RuntimeParameter[str] = None
) -> StepOutput:
    """Length of the instruction times `factor`."""
    for row in inputs:
        row["length"] = len(row["instruction"]) * factor
        row["label"] = label
    yield inputs


@step(outputs=["n"], step_type="generator")
def Numbers(offset: int = 0, count: RuntimeParameter[int] = 3) -> Any:
    """Numbers from `offset` to `count`."""
    yield [{"n": i} for i in range(offset, count)], True


@step(inputs=["n"], outputs=["share"], step_type="global")
def Share(inputs: StepInput) -> StepOutput:
    total = sum(row["n"] for row in inputs)
    yield [{**row, "share": row["n"] / total} for row in inputs]


def test_step_decorator_builds_step_classes() -> None:
    length = InstructionLength()

    assert issubclass(InstructionLength, Step)
    assert issubclass(Numbers, GeneratorStep)
    assert issubclass(Share, GlobalStep)
    assert length.name == "instruction_length_0"
    assert length.inputs == ["instruction"] and length.outputs == ["length"]
    assert length.runtime_parameters_names == {
        "resources": dict.fromkeys(["replicas", "cpus", "gpus", "memory", "resources"], True),
        "input_batch_size": True,
        "factor": True,
        "label": False,  # RuntimeParameter without a default: required
    }
    assert length.factor == 1
    assert list(length.process([{"instruction": "abc"}])) == [
        [{"instruction": "abc", "length": 3, "label": None}]
    ]


def test_step_decorator_runtime_parameters_in_a_pipeline() -> None:
    with Pipeline(name="decorated") as pipeline:
        numbers = Numbers()
        share = Share()
        numbers >> share
    with Pipeline(name="decorated-2") as pipeline_2:
        load = LoadDataFromDicts(data=[{"instruction": "abcd"}])
        length = InstructionLength()
        load >> length

    shares = pipeline.run(params={numbers.name: {"count": 5}}, use_cache=False)["default"]["train"]
    lengths = pipeline_2.run(params={length.name: {"factor": "3", "label": "x"}}, use_cache=False)[
        "default"
    ]["train"]

    assert shares["n"] == [0, 1, 2, 3, 4]
    assert shares["share"] == [0.0, 0.1, 0.2, 0.3, 0.4]
    assert lengths["length"] == [12]
    assert lengths["label"] == ["x"]


def test_step_decorator_rejects_unknown_step_type() -> None:
    with pytest.raises(ValueError, match="'special'"):
        step(step_type="special")  # type: ignore[arg-type]


# -- names and connections ---------------------------------------------------------------------------


def test_automatic_names_are_snake_case_with_a_counter() -> None:
    with Pipeline(name="names") as pipeline:
        load = LoadDataFromDicts(data=rows(1))
        first = TextGeneration(llm=EchoLLM())
        second = TextGeneration(llm=EchoLLM())
        named = TextGeneration(name="mine", llm=EchoLLM())
        third = TextGeneration(llm=EchoLLM())

    assert load.name == "load_data_from_dicts_0"
    assert [first.name, second.name, named.name, third.name] == [
        "text_generation_0",
        "text_generation_1",
        "mine",
        "text_generation_2",
    ]
    assert set(pipeline.dag.steps) == {
        "load_data_from_dicts_0",
        "text_generation_0",
        "text_generation_1",
        "mine",
        "text_generation_2",
    }
    assert Upper().name == "upper_0"  # outside a pipeline too


def test_duplicate_name_fails() -> None:
    with Pipeline(name="dupes"):
        Upper(name="same")
        with pytest.raises(ValueError, match="'same' already exists"):
            Upper(name="same")


def test_invalid_name_fails() -> None:
    with pytest.raises(pydantic.ValidationError, match="name"):
        Upper(name="has space")


def test_rshift_variants_and_connect() -> None:
    with Pipeline(name="edges") as pipeline:
        a = LoadDataFromDicts(data=rows(1))
        b, c, d, e = (RecordingStep(name=n) for n in "bcde")

        assert (a >> b) is b
        assert (b >> [c, d]) == [c, d]
        assert ([c, d] >> e) is e

    dag = pipeline.dag
    assert dag.successors(a.name) == ["b"]
    assert dag.successors("b") == ["c", "d"]
    assert dag.predecessors("e") == ["c", "d"]
    assert dag.leaves == ["e"]
    assert dag.roots == [a.name]

    with Pipeline(name="connect") as other:
        x = LoadDataFromDicts(data=rows(1))
        y, z = RecordingStep(name="y"), RecordingStep(name="z")
        x.connect(y, z)
    assert other.dag.successors(x.name) == ["y", "z"]


def test_chained_rshift() -> None:
    with Pipeline(name="chain") as pipeline:
        a = LoadDataFromDicts(data=rows(2))
        b, c = RecordingStep(name="b"), Upper(name="c", input_mappings={"text": "copy"})
        a >> b >> c

    assert pipeline.dag.topological_order() == [a.name, "b", "c"]


def test_steps_register_with_the_innermost_pipeline_only() -> None:
    with Pipeline(name="outer") as outer:
        a = Upper(name="a")
        with Pipeline(name="inner") as inner:
            b = Upper(name="b")
        c = Upper(name="c")
    d = Upper(name="d")

    assert list(outer.dag.steps) == ["a", "c"]
    assert list(inner.dag.steps) == ["b"]
    assert (a.pipeline, b.pipeline, c.pipeline, d.pipeline) == (outer, inner, outer, None)


def test_connecting_outside_a_pipeline_or_across_pipelines_fails() -> None:
    lonely, other = Upper(name="lonely"), Upper(name="other")
    with pytest.raises(PotstillUserError, match="'lonely' is not part of a pipeline"):
        lonely >> other

    with Pipeline(name="one"):
        first = LoadDataFromDicts(data=rows(1))
    with Pipeline(name="two"):
        second = RecordingStep()
    with pytest.raises(PotstillUserError, match="different pipelines"):
        first >> second


def test_connecting_twice_fails() -> None:
    with Pipeline(name="twice"):
        a = LoadDataFromDicts(data=rows(1))
        b = RecordingStep()
        a >> b
        with pytest.raises(PipelineValidationError, match="already connected"):
            a >> b
