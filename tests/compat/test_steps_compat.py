"""Steps as distilabel 1.1 scripts and tests use them, with `potstill` imports."""

from __future__ import annotations

import logging
from typing import List

import pytest
from tests.core.fakes import EchoLLM

from potstill.errors import PipelineValidationError
from potstill.mixins.runtime_parameters import RuntimeParameter
from potstill.pipeline import Pipeline
from potstill.steps import GeneratorStep, LoadDataFromDicts, Step, StepInput, step
from potstill.steps.tasks import TextGeneration
from potstill.steps.typing import GeneratorStepOutput, StepOutput


class LengthOfColumns(Step):
    """Adds `<column>_length` for each column named by a runtime parameter.

    Attributes:
        columns: the columns to measure.
    """

    columns: RuntimeParameter[List[str]] = None

    @property
    def inputs(self) -> List[str]:
        return self.columns  # None until the runtime parameter is set

    @property
    def outputs(self) -> List[str]:
        return [f"{column}_length" for column in self.columns]

    def process(self, inputs: StepInput) -> StepOutput:
        for row in inputs:
            for column in self.columns:
                row[f"{column}_length"] = len(row[column])
        yield inputs


def test_columns_from_a_runtime_parameter_build_and_run() -> None:
    with Pipeline(name="columns-from-params") as pipeline:
        load = LoadDataFromDicts(data=[{"text": "four", "title": "ab"}])
        lengths = LengthOfColumns(output_mappings={"text_length": "n"})
        load >> lengths

    distiset = pipeline.run(
        parameters={lengths.name: {"columns": ["text", "title"]}}, use_cache=False
    )

    assert distiset["default"]["train"][0] == {
        "text": "four",
        "title": "ab",
        "n": 4,
        "title_length": 2,
    }


def test_mappings_are_verified_by_public_methods_and_by_the_pipeline() -> None:
    with Pipeline(name="bad-mappings") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "hi"}])
        task = TextGeneration(
            llm=EchoLLM(),
            input_mappings={"prompt": "instruction"},
            output_mappings={"answer": "response"},
        )
        load >> task

    with pytest.raises(ValueError, match="'prompt'"):
        task.verify_inputs_mappings()
    with pytest.raises(ValueError, match="'answer'"):
        task.verify_outputs_mappings()
    with pytest.raises(PipelineValidationError) as error:
        pipeline.run(use_cache=False)
    assert "'prompt'" in str(error.value) and "'answer'" in str(error.value)

    task.input_mappings = {"instruction": "instruction"}
    task.output_mappings = {"generation": "response"}
    task.verify_inputs_mappings()
    task.verify_outputs_mappings()


def test_a_step_outside_a_pipeline_warns_and_works_standalone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        task = TextGeneration(name="standalone", llm=EchoLLM())

    [record] = [r for r in caplog.records if "standalone" in r.getMessage()]
    assert "not part of a pipeline" in record.getMessage()
    assert task.pipeline is None
    task.load()
    [rows] = list(task.process([{"instruction": "hello"}]))
    assert rows[0]["generation"] == "hello #0"


def test_a_step_in_a_pipeline_does_not_warn(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING), Pipeline(name="quiet"):
        LoadDataFromDicts(data=[{"a": 1}])
    TextGeneration(llm=EchoLLM(), pipeline=Pipeline(name="explicit"))
    assert not [r for r in caplog.records if "not part of a pipeline" in r.getMessage()]


def test_step_decorator_rejects_two_step_inputs() -> None:
    with pytest.raises(ValueError, match="more than one parameter annotated with `StepInput`"):

        @step(inputs=["a"], outputs=["b"])
        def TwoInputs(first: StepInput, second: StepInput) -> StepOutput:
            yield first


def test_step_decorator_rejects_an_invalid_step_type() -> None:
    with pytest.raises(ValueError, match="Invalid step type 'invalid'"):

        @step(step_type="invalid")  # type: ignore[arg-type]
        def Whatever(inputs: StepInput) -> StepOutput:
            yield inputs


def test_step_decorator_kinds_and_runtime_parameters() -> None:
    @step(outputs=["n"], step_type="generator")
    def Numbers(offset: int = 0, count: RuntimeParameter[int] = 3) -> GeneratorStepOutput:
        yield [{"n": n} for n in range(offset, count)], True

    @step(inputs=["n"], outputs=["n"], step_type="global")
    def Reverse(inputs: StepInput) -> StepOutput:
        yield list(reversed(inputs))

    with Pipeline(name="decorated") as pipeline:
        numbers = Numbers()
        numbers >> Reverse()

    assert isinstance(numbers, GeneratorStep)
    assert [
        (item["name"], item["optional"])
        for item in pipeline.get_runtime_parameters_info()[numbers.name]
        if item["name"] != "resources"
    ] == [("batch_size", True), ("count", True)]
    distiset = pipeline.run(parameters={numbers.name: {"count": 4}}, use_cache=False)
    assert distiset["default"]["train"]["n"] == [3, 2, 1, 0]


def test_pipeline_runtime_parameters_info_lists_every_step() -> None:
    with Pipeline(name="info") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "hi"}])
        task = TextGeneration(llm=EchoLLM())
        load >> task

    info = pipeline.get_runtime_parameters_info()

    assert list(info) == [load.name, task.name]
    assert {item["name"] for item in info[load.name]} == {"resources", "batch_size"}
    llm_info = next(item for item in info[task.name] if item["name"] == "llm")
    kwargs = next(
        i for i in llm_info["runtime_parameters_info"] if i["name"] == "generation_kwargs"
    )
    assert {key["name"] for key in kwargs["keys"]} == {"suffix", "temperature"}
    assert {"input_batch_size", "num_generations"} <= {item["name"] for item in info[task.name]}
