"""Runtime parameters: declaring, listing, describing, setting (nested), validating."""

from __future__ import annotations

from typing import Any, Optional

import pytest
from pydantic import Field, SecretStr
from tests.core.fakes import EchoLLM, LoadCounter
from tests.fake_server import FakeServer

from potstill.errors import PotstillUserError
from potstill.llms import OpenAILLM
from potstill.mixins.runtime_parameters import RuntimeParameter, RuntimeParametersMixin
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration


class Knobs(RuntimeParametersMixin):
    """A component with every kind of runtime parameter.

    Attributes:
        documented: described in this docstring only.
    """

    required: RuntimeParameter[int]
    with_default: RuntimeParameter[float] = Field(default=0.5, description="A float knob.")
    optional_none: Optional[RuntimeParameter[str]] = None
    documented: RuntimeParameter[str] = "doc"
    plain: int = 3
    secret: Optional[RuntimeParameter[SecretStr]] = None


class Outer(RuntimeParametersMixin):
    knobs: Knobs
    size: RuntimeParameter[int] = 1


def test_runtime_parameter_required_and_optional() -> None:
    knobs = Knobs()

    assert knobs.runtime_parameters_names == {
        "required": False,  # RuntimeParameter[T] with no default: required
        "with_default": True,
        "optional_none": True,  # Optional[RuntimeParameter[T]]: optional whatever the default
        "documented": True,
        "secret": True,
    }
    assert "plain" not in knobs.runtime_parameters_names
    assert knobs.required is None


def test_runtime_parameters_info_descriptions() -> None:
    info = {item["name"]: item for item in Knobs().get_runtime_parameters_info()}

    assert info["with_default"] == {
        "name": "with_default",
        "optional": True,
        "description": "A float knob.",
    }
    assert info["documented"]["description"] == "described in this docstring only."
    assert info["required"]["optional"] is False
    assert "description" not in info["required"]


def test_nested_names_info_and_set() -> None:
    outer = Outer(knobs=Knobs())

    assert outer.runtime_parameters_names["knobs"]["required"] is False
    nested = next(i for i in outer.get_runtime_parameters_info() if i["name"] == "knobs")
    assert {i["name"] for i in nested["runtime_parameters_info"]} >= {"required", "with_default"}

    outer.set_runtime_parameters({"size": "4", "knobs": {"required": "7", "with_default": 2}})

    # strings (from a CLI or YAML) are coerced by validation
    assert outer.size == 4
    assert outer.knobs.required == 7
    assert outer.knobs.with_default == 2.0


def test_secret_runtime_parameter_is_wrapped_and_never_echoed() -> None:
    knobs = Knobs()

    knobs.set_runtime_parameters({"secret": "sk-runtime-secret"})

    assert isinstance(knobs.secret, SecretStr)
    assert knobs.secret.get_secret_value() == "sk-runtime-secret"
    assert "sk-runtime-secret" not in repr(knobs)
    with pytest.raises(PotstillUserError) as info:
        knobs.set_runtime_parameters({"secret": ["sk-wrong-type-secret"]})
    assert "sk-wrong-type-secret" not in str(info.value)
    assert "'secret'" in str(info.value)


def test_unknown_name_fails_with_close_matches() -> None:
    with pytest.raises(PotstillUserError) as info:
        Outer(knobs=Knobs()).set_runtime_parameters({"knobs": {"with_defualt": 1}})

    message = str(info.value)
    assert "Unknown runtime parameter 'with_defualt'" in message
    assert "Knobs" in message or "knobs" in message
    assert "Did you mean 'with_default'?" in message


def test_unknown_name_without_close_match_lists_valid_names() -> None:
    with pytest.raises(PotstillUserError) as info:
        Outer(knobs=Knobs()).set_runtime_parameters({"zzz": 1})

    assert "Valid names are: 'knobs', 'size'." in str(info.value)


def test_wrong_type_names_the_field_value_and_expected_type() -> None:
    with pytest.raises(PotstillUserError) as info:
        Outer(knobs=Knobs()).set_runtime_parameters({"knobs": {"with_default": "high"}})

    message = str(info.value)
    assert "'with_default'" in message
    assert "'high'" in message
    assert "float" in message
    assert "-> knobs" in message


# -- on steps and LLMs -------------------------------------------------------------------------


@pytest.fixture
def task() -> TextGeneration:
    return TextGeneration(
        name="gen",
        llm=OpenAILLM(model="gpt-4", api_key="k", generation_kwargs={"max_new_tokens": 10}),
    )


def test_task_runtime_parameters_names_nest_the_llm(task: TextGeneration) -> None:
    names = task.runtime_parameters_names

    assert names["input_batch_size"] is True
    assert names["num_generations"] is True
    assert names["add_raw_output"] is True
    llm_names = names["llm"]
    assert llm_names["generation_kwargs"] == {
        "max_new_tokens": True,
        "frequency_penalty": True,
        "presence_penalty": True,
        "temperature": True,
        "top_p": True,
        "stop": True,
        "response_format": True,
        "seed": True,
        "logprobs": True,
        "top_logprobs": True,
        "extra_body": True,
    }
    for field in ("base_url", "api_key", "timeout", "max_retries", "max_concurrent_requests"):
        assert llm_names[field] is True


def test_generation_kwargs_descriptions_come_from_agenerate_docstring(task: TextGeneration) -> None:
    info = task.get_runtime_parameters_info()
    llm_info = next(i for i in info if i["name"] == "llm")["runtime_parameters_info"]
    generation = next(i for i in llm_info if i["name"] == "generation_kwargs")
    keys = {key["name"]: key for key in generation["keys"]}

    assert keys["temperature"] == {
        "name": "temperature",
        "optional": True,
        "description": "the sampling temperature.",
    }
    assert keys["max_new_tokens"]["description"].startswith("the maximum number of tokens")
    assert "num_generations" not in keys and "input" not in keys
    assert all("description" in key for key in generation["keys"])


def test_generation_kwargs_described_for_custom_sync_llm() -> None:
    keys = {k["name"]: k for k in EchoLLM().generation_spec().info()}

    assert keys == {
        "suffix": {
            "name": "suffix",
            "optional": True,
            "description": "appended to every generation.",
        },
        "temperature": {
            "name": "temperature",
            "optional": True,
            "description": "ignored; here to be validated.",
        },
    }


def test_set_runtime_parameters_step_llm_generation_kwargs(task: TextGeneration) -> None:
    task.set_runtime_parameters(
        {
            "input_batch_size": 8,
            "num_generations": "2",
            "llm": {"timeout": 30, "generation_kwargs": {"temperature": 0.7}},
        }
    )

    assert task.input_batch_size == 8
    assert task.num_generations == 2
    assert task.llm.timeout == 30
    # merged over the constructor's generation kwargs, not replacing them
    assert task.llm.generation_kwargs == {"max_new_tokens": 10, "temperature": 0.7}


def test_runtime_generation_kwargs_override_constructor_values(task: TextGeneration) -> None:
    task.set_runtime_parameters({"llm": {"generation_kwargs": {"max_new_tokens": 99}}})
    assert task.llm.generation_kwargs == {"max_new_tokens": 99}

    # a second run's values are merged over the constructor's again, not over the first run's
    task.set_runtime_parameters({"llm": {"generation_kwargs": {"top_p": 0.5}}})
    assert task.llm.generation_kwargs == {"max_new_tokens": 10, "top_p": 0.5}


def test_unknown_generation_kwarg_names_step_and_suggests(task: TextGeneration) -> None:
    with pytest.raises(PotstillUserError) as info:
        task.set_runtime_parameters({"llm": {"generation_kwargs": {"temprature": 0.1}}})

    message = str(info.value)
    assert "Unknown generation kwarg 'temprature'" in message
    assert "'gen'" in message
    assert "Did you mean 'temperature'?" in message
    assert task.llm.generation_kwargs == {"max_new_tokens": 10}


def test_wrong_typed_generation_kwarg_names_it(task: TextGeneration) -> None:
    with pytest.raises(PotstillUserError) as info:
        task.set_runtime_parameters({"llm": {"generation_kwargs": {"max_new_tokens": "lots"}}})

    message = str(info.value)
    assert "max_new_tokens='lots'" in message
    assert "'gen'" in message
    assert "integer" in message


def test_unknown_step_parameter_suggests(task: TextGeneration) -> None:
    with pytest.raises(PotstillUserError) as info:
        task.set_runtime_parameters({"input_batch_sise": 3})

    assert "Unknown runtime parameter 'input_batch_sise' for step 'gen'" in str(info.value)
    assert "Did you mean 'input_batch_size'?" in str(info.value)


def test_wrong_type_on_step_and_llm_field(task: TextGeneration) -> None:
    with pytest.raises(PotstillUserError) as info:
        task.set_runtime_parameters({"input_batch_size": "many"})
    assert "Invalid value 'many' for runtime parameter 'input_batch_size' of step 'gen'" in str(
        info.value
    )

    with pytest.raises(PotstillUserError) as info:
        task.set_runtime_parameters({"llm": {"timeout": "soon"}})
    message = str(info.value)
    assert "'timeout'" in message and "'soon'" in message and "step 'gen' -> llm" in message
    assert "float" in message


def test_expected_type_is_described_without_repeats(task: TextGeneration) -> None:
    with pytest.raises(PotstillUserError) as info:
        task.set_runtime_parameters({"llm": {"api_key": 12345}})

    message = str(info.value)
    assert "Expected SecretStr | None." in message
    assert "12345" not in message


# -- through Pipeline.run ------------------------------------------------------------------------


def _pipeline(generation_kwargs: dict[str, Any]) -> tuple[Pipeline, TextGeneration]:
    with Pipeline(name="rp") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "hello"}, {"instruction": "say hello"}])
        generate = TextGeneration(llm=OpenAILLM(model="gpt-4", generation_kwargs=generation_kwargs))
        load >> generate
    return pipeline, generate


def test_run_generation_kwargs_are_merged_over_the_constructor(openai_env: FakeServer) -> None:
    pipeline, generate = _pipeline({"max_new_tokens": 10, "temperature": 0.3})

    distiset = pipeline.run(
        params={generate.name: {"llm": {"generation_kwargs": {"temperature": 0.9, "seed": 7}}}}
    )

    assert distiset["default"]["train"]["generation"] == [
        "Hello! How can I help you today?",
        "Hello!",
    ]
    bodies = [r.body for r in openai_env.requests]
    assert len(bodies) == 2
    for body in bodies:
        assert body["max_tokens"] == 10  # from the constructor
        assert body["temperature"] == 0.9  # from run(), over the constructor's
        assert body["seed"] == 7


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"temprature": 0.9}, "Unknown generation kwarg 'temprature'"),
        ({"temperature": "very hot"}, "temperature='very hot'"),
    ],
)
def test_bad_generation_kwargs_fail_before_loading_or_requests(
    openai_env: FakeServer, kwargs: dict[str, Any], expected: str
) -> None:
    pipeline, generate = _pipeline({})

    with pytest.raises(PotstillUserError) as info:
        pipeline.run(params={generate.name: {"llm": {"generation_kwargs": kwargs}}})

    assert expected in str(info.value)
    assert "text_generation_0" in str(info.value)
    assert openai_env.state.request_count == 0
    assert not generate.llm.is_loaded


def test_string_generation_kwargs_are_coerced_before_the_request(openai_env: FakeServer) -> None:
    pipeline, generate = _pipeline({})

    pipeline.run(
        params={
            generate.name: {
                "llm": {"generation_kwargs": {"temperature": "0.25", "max_new_tokens": "5"}}
            }
        }
    )

    body = openai_env.requests[0].body
    assert body["temperature"] == 0.25
    assert body["max_tokens"] == 5


def test_merge_is_documented() -> None:
    from potstill.llms import LLM

    assert "merged over" in (Pipeline.run.__doc__ or "")
    assert "merged over" in (LLM.__doc__ or "")


def test_sync_llm_generation_kwargs_reach_generate() -> None:
    LoadCounter.reset()
    with Pipeline(name="sync-kwargs") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "x"}])
        generate = TextGeneration(llm=EchoLLM(generation_kwargs={"suffix": "!"}))
        load >> generate

    distiset = pipeline.run(
        params={generate.name: {"llm": {"generation_kwargs": {"temperature": 0.1}}}}
    )

    assert distiset["default"]["train"]["generation"] == ["x #0!"]
    assert generate.llm.generation_kwargs == {"suffix": "!", "temperature": 0.1}


# A name given at the wrong level: the error says where it belongs and shows the nesting.


def test_a_generation_kwarg_beside_the_llm_fields_is_pointed_to_generation_kwargs(
    task: TextGeneration,
) -> None:
    with pytest.raises(PotstillUserError) as info:
        task.set_runtime_parameters({"llm": {"temperature": 0.3}})

    message = str(info.value)
    assert "Unknown runtime parameter 'temperature'" in message
    assert (
        "'temperature' is a generation kwarg: pass it as "
        "{'llm': {'generation_kwargs': {'temperature': 0.3}}}" in message
    )
    assert "--param gen.llm.generation_kwargs.temperature=0.3" in message


def test_generation_kwargs_at_the_step_level_are_pointed_under_llm(task: TextGeneration) -> None:
    with pytest.raises(PotstillUserError) as info:
        task.set_runtime_parameters({"generation_kwargs": {"temperature": 0.3}})

    message = str(info.value)
    assert "'generation_kwargs' belongs under `llm`" in message
    assert "{'llm': {'generation_kwargs': {'temperature': 0.3}}}" in message
    assert "num_generations" not in message  # the old, misleading close match


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # a step parameter given to the LLM
        ({"llm": {"input_batch_size": 4}}, "pass it as {'input_batch_size': 4}"),
        # an LLM field given to the step
        ({"timeout": 5}, "'timeout' belongs under `llm`: pass it as {'llm': {'timeout': 5}}"),
        # an LLM field given as a generation kwarg
        (
            {"llm": {"generation_kwargs": {"max_retries": 2}}},
            "'max_retries' belongs under `llm`: pass it as {'llm': {'max_retries': 2}}",
        ),
        # a generation kwarg given to the step
        ({"top_p": 0.5}, "{'llm': {'generation_kwargs': {'top_p': 0.5}}}"),
    ],
)
def test_a_name_valid_at_another_level_says_where_it_lives(
    task: TextGeneration, params: dict[str, Any], expected: str
) -> None:
    with pytest.raises(PotstillUserError, match="Unknown") as info:
        task.set_runtime_parameters(params)
    assert expected in str(info.value)


def test_a_misplaced_secret_is_not_echoed(task: TextGeneration) -> None:
    with pytest.raises(PotstillUserError) as info:
        task.set_runtime_parameters({"api_key": "sk-very-secret"})
    message = str(info.value)
    assert "{'llm': {'api_key': '**********'}}" in message
    assert "sk-very-secret" not in message


def test_a_typo_still_gets_the_close_match(task: TextGeneration) -> None:
    with pytest.raises(PotstillUserError) as info:
        task.set_runtime_parameters({"llm": {"temprature": 0.3}})
    assert "Did you mean" in str(info.value) or "Valid names" in str(info.value)
    assert "generation kwarg" not in str(info.value)


def test_a_runtime_field_in_the_constructors_generation_kwargs_is_pointed_out() -> None:
    with pytest.raises(ValueError) as info:
        OpenAILLM(model="m", api_key="k", generation_kwargs={"max_retries": 2})
    assert "'max_retries' is a runtime parameter of LLM OpenAILLM itself" in str(info.value)
