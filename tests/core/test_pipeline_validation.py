"""Pipeline validation: every error happens before any step (or LLM) is loaded, and names
the step, the field and what to do."""

from __future__ import annotations

from typing import Any, List

import pytest
from pydantic import validate_call
from tests.core.fakes import EchoLLM, LoadCounter, RecordingStep

from potstill.errors import PipelineValidationError, PotstillUserError
from potstill.llms import LLM
from potstill.mixins.runtime_parameters import RuntimeParameter
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts, Step, StepInput, StepOutput
from potstill.steps.tasks import TextGeneration


@pytest.fixture(autouse=True)
def _count_loads() -> None:
    LoadCounter.reset()


def assert_nothing_loaded(pipeline: Pipeline) -> None:
    assert LoadCounter.loads == 0
    for step in pipeline.dag.steps.values():
        llm = getattr(step, "llm", None)
        assert llm is None or not llm.is_loaded


class NeedsLLM(LLM):
    """An LLM with a required field and a required generation kwarg."""

    endpoint: RuntimeParameter[str] = None

    def load(self) -> None:
        super().load()
        LoadCounter.loads += 1

    @property
    def model_name(self) -> str:
        return "needs"

    @validate_call
    def generate(
        self, inputs: List[Any], num_generations: int = 1, style: str = "plain", *, mood: str
    ) -> List[List[str]]:
        """Generates in a mood.

        Args:
            inputs: conversations.
            num_generations: generations per input.
            style: how to write.
            mood: required: the mood to write in.
        """
        return [[f"{mood}:{style}"] * num_generations for _ in inputs]


class Threshold(Step):
    """A step with a required runtime parameter."""

    threshold: RuntimeParameter[float] = None

    @property
    def inputs(self) -> list[str]:
        return ["instruction"]

    @property
    def outputs(self) -> list[str]:
        return ["over"]

    def load(self) -> None:
        super().load()
        LoadCounter.loads += 1

    def process(self, inputs: StepInput) -> StepOutput:
        yield [{**row, "over": len(row["instruction"]) > (self.threshold or 0)} for row in inputs]


def _validation_error(pipeline: Pipeline, **run_kwargs: Any) -> str:
    with pytest.raises(PipelineValidationError) as info:
        pipeline.run(use_cache=False, **run_kwargs)
    assert_nothing_loaded(pipeline)
    return str(info.value)


# -- structure --------------------------------------------------------------------------------------


def test_cycle_is_refused_when_connecting() -> None:
    with Pipeline(name="cycle") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "x"}])
        a, b, c = RecordingStep(name="a"), RecordingStep(name="b"), RecordingStep(name="c")
        load >> a >> b >> c
        with pytest.raises(PipelineValidationError) as info:
            c >> a

    message = str(info.value)
    assert "'c' >> 'a'" in message
    assert "cycle" in message
    assert "a >> b >> c" in message or "c >> a >> b >> c" in message
    assert "remove one of these connections" in message
    assert pipeline.dag.successors("c") == []
    assert_nothing_loaded(pipeline)


def test_self_loop_is_refused() -> None:
    with Pipeline(name="self-loop"):
        a = RecordingStep(name="a")
        with pytest.raises(PipelineValidationError, match="'a' >> 'a' would create a cycle"):
            a >> a


def test_cycle_in_a_loaded_file_is_refused() -> None:
    with Pipeline(name="file-cycle") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "x"}])
        load >> RecordingStep(name="a") >> RecordingStep(name="b")
    dump = pipeline.dump()
    dump["pipeline"]["connections"].append({"from": "b", "to": ["a"]})

    with pytest.raises(PipelineValidationError, match="cycle"):
        Pipeline.from_dict(dump)


def test_root_that_is_not_a_generator() -> None:
    with Pipeline(name="no-generator") as pipeline:
        TextGeneration(name="orphan", llm=EchoLLM())

    message = _validation_error(pipeline)

    assert "Step 'orphan' has no input" in message
    assert "not a generator step" in message
    assert "LoadDataFromDicts(data=[...]) >> orphan" in message


def test_generator_with_a_predecessor() -> None:
    with Pipeline(name="fed-generator") as pipeline:
        first = LoadDataFromDicts(name="first", data=[{"instruction": "x"}])
        second = LoadDataFromDicts(name="second", data=[{"instruction": "y"}])
        first >> second

    message = _validation_error(pipeline)

    assert "Step 'second' is a generator step" in message
    assert "['first']" in message
    assert "Remove those connections" in message


def test_several_predecessors_need_star_inputs() -> None:
    with Pipeline(name="join") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "x"}])
        a, b, join = RecordingStep(name="a"), RecordingStep(name="b"), RecordingStep(name="join")
        load >> [a, b]
        [a, b] >> join

    message = _validation_error(pipeline)

    assert "Step 'join' receives batches from 2 steps ['a', 'b']" in message
    assert "*inputs: StepInput" in message


def test_empty_pipeline() -> None:
    pipeline = Pipeline(name="empty")

    with pytest.raises(PipelineValidationError, match="no steps"):
        pipeline.run()


# -- columns ------------------------------------------------------------------------------------------


def test_missing_input_column_with_suggestion() -> None:
    with Pipeline(name="columns") as pipeline:
        load = LoadDataFromDicts(data=[{"instructions": "x"}])
        generate = TextGeneration(name="gen", llm=EchoLLM())
        load >> generate

    message = _validation_error(pipeline)

    assert "Step 'gen' needs input column 'instruction'" in message
    assert "available: ['instructions']" in message
    assert "Did you mean 'instructions'?" in message
    assert "input_mappings={'instruction': '<column>'}" in message


def test_missing_input_column_is_checked_after_mappings() -> None:
    with Pipeline(name="mapped") as pipeline:
        load = LoadDataFromDicts(data=[{"prompt": "x"}])
        generate = TextGeneration(
            name="gen", llm=EchoLLM(), input_mappings={"instruction": "promt"}
        )
        load >> generate

    message = _validation_error(pipeline)
    assert "Step 'gen' needs input column 'promt'" in message
    assert "Did you mean 'prompt'?" in message

    generate.input_mappings = {"instruction": "prompt"}
    distiset = pipeline.run(use_cache=False)
    assert distiset["default"]["train"]["generation"] == ["x #0"]
    assert distiset["default"]["train"].column_names[0] == "prompt"


def test_upstream_output_mappings_count_as_available_columns() -> None:
    with Pipeline(name="out-mapped") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "x"}])
        first = RecordingStep(name="first", output_mappings={"copy": "renamed"})
        second = TextGeneration(
            name="second", llm=EchoLLM(), input_mappings={"instruction": "copy"}
        )
        load >> first >> second

    message = _validation_error(pipeline)
    assert "Step 'second' needs input column 'copy'" in message
    assert "Did you mean" in message or "renamed" in message

    second.input_mappings = {"instruction": "renamed"}
    assert pipeline.run(use_cache=False)["default"]["train"]["generation"] == ["x #0"]


def test_optional_input_column_may_be_missing() -> None:
    with Pipeline(name="optional-column") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "x"}])  # no system_prompt column
        load >> TextGeneration(llm=EchoLLM())

    assert pipeline.run(use_cache=False)["default"]["train"]["generation"] == ["x #0"]


def test_every_problem_is_listed_at_once() -> None:
    with Pipeline(name="many-problems") as pipeline:
        load = LoadDataFromDicts(data=[{"text": "x"}])
        load >> TextGeneration(name="gen", llm=EchoLLM())
        RecordingStep(name="orphan")

    message = _validation_error(pipeline)

    assert "Step 'gen' needs input column 'instruction'" in message
    assert "Step 'orphan' has no input" in message
    assert message.count("\n  - ") >= 3


# -- parameters -------------------------------------------------------------------------------------


def test_unknown_step_name_in_params_suggests() -> None:
    with Pipeline(name="params") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "x"}])
        load >> TextGeneration(llm=EchoLLM())

    message = _validation_error(pipeline, params={"text_generaton_0": {"num_generations": 2}})

    assert (
        "Step 'text_generaton_0' given in `run(params=...)` is not part of the pipeline" in message
    )
    assert "Did you mean 'text_generation_0'?" in message


def test_a_parameter_given_in_place_of_a_step_name_shows_the_nesting() -> None:
    with Pipeline(name="params-keyed") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "x"}])
        load >> TextGeneration(llm=EchoLLM())

    message = _validation_error(
        pipeline, params={"llm": {"generation_kwargs": {"temperature": 0.3}}}
    )

    assert "Step 'llm' given in `run(params=...)` is not part of the pipeline" in message
    assert "`params` is keyed by step name first" in message
    assert (
        "pass params={'text_generation_0': {'llm': {'generation_kwargs': {'temperature': 0.3}}}}"
        in message
    )


def test_unknown_runtime_parameter_in_params_suggests() -> None:
    with Pipeline(name="params-2") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "x"}])
        generate = TextGeneration(llm=EchoLLM())
        load >> generate

    with pytest.raises(PotstillUserError) as info:
        pipeline.run(params={generate.name: {"num_generation": 2}})

    assert "Unknown runtime parameter 'num_generation' for step 'text_generation_0'" in str(
        info.value
    )
    assert "Did you mean 'num_generations'?" in str(info.value)
    assert_nothing_loaded(pipeline)


def test_wrong_type_in_params_names_step_field_and_value() -> None:
    with Pipeline(name="params-3") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "x"}])
        generate = TextGeneration(llm=EchoLLM())
        load >> generate

    with pytest.raises(PotstillUserError) as info:
        pipeline.run(params={generate.name: {"num_generations": "several"}})

    message = str(info.value)
    assert "'several'" in message
    assert "'num_generations'" in message
    assert "step 'text_generation_0'" in message
    assert "int" in message
    assert_nothing_loaded(pipeline)


def test_missing_required_runtime_parameters_step_llm_and_generation_kwarg() -> None:
    with Pipeline(name="required") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "x"}])
        threshold = Threshold(name="threshold")
        generate = TextGeneration(name="gen", llm=NeedsLLM())
        load >> [threshold, generate]

    message = _validation_error(pipeline)

    assert "Step 'threshold' is missing required runtime parameter 'threshold'" in message
    assert 'pipeline.run(params={"threshold": {"threshold": ...}})' in message
    assert "Step 'gen' is missing required runtime parameter 'llm.endpoint'" in message
    assert 'pipeline.run(params={"gen": {"llm": {"endpoint": ...}}})' in message
    assert (
        "Step 'gen' is missing required runtime parameter 'llm.generation_kwargs.mood'" in message
    )
    assert '{"gen": {"llm": {"generation_kwargs": {"mood": ...}}}}' in message


def test_required_runtime_parameters_given_at_run_time() -> None:
    with Pipeline(name="required-given") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "x"}, {"instruction": "long one"}])
        threshold = Threshold(name="threshold")
        generate = TextGeneration(name="gen", llm=NeedsLLM())
        load >> [threshold, generate]

    distiset = pipeline.run(
        params={
            "threshold": {"threshold": "3"},
            "gen": {"llm": {"endpoint": "http://x", "generation_kwargs": {"mood": "happy"}}},
        },
        use_cache=False,
    )

    assert distiset["threshold"]["train"]["over"] == [False, True]
    assert distiset["gen"]["train"]["generation"] == ["happy:plain", "happy:plain"]
    assert generate.llm.endpoint == "http://x"


def test_params_and_parameters_alias() -> None:
    with Pipeline(name="alias") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "x"}])
        generate = TextGeneration(llm=EchoLLM())
        load >> generate

    by_params = pipeline.run(params={generate.name: {"num_generations": 2}}, use_cache=False)
    by_parameters = pipeline.run(
        parameters={generate.name: {"num_generations": 3}}, use_cache=False
    )

    assert by_params["default"]["train"]["generation"] == ["x #0", "x #1"]
    assert by_parameters["default"]["train"]["generation"] == ["x #0", "x #1", "x #2"]
    with pytest.raises(PotstillUserError, match="not both"):
        pipeline.run(params={}, parameters={})


def test_params_must_be_a_dict() -> None:
    with Pipeline(name="bad-params") as pipeline:
        LoadDataFromDicts(data=[{"instruction": "x"}])

    with pytest.raises(PotstillUserError, match="must be a dict of step name"):
        pipeline.run(params=[("x", 1)])  # type: ignore[arg-type]
    assert_nothing_loaded(pipeline)
