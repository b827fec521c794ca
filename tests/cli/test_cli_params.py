"""`--param STEP.NAME=VALUE` parsing, and coercion of the string values it produces."""

from __future__ import annotations

import pytest

from potstill.cli.params import is_secret_name, mask_param, parse_runtime_parameters
from potstill.errors import PotstillUserError
from potstill.llms import OpenAILLM


def test_dotted_keys_become_nested_dicts_and_values_stay_strings() -> None:
    params = parse_runtime_parameters(
        [
            "text_generation_0.llm.generation_kwargs.temperature=0.3",
            "text_generation_0.llm.generation_kwargs.max_new_tokens=8",
            "text_generation_0.input_batch_size=8",
            "load_0.batch_size=4",
        ]
    )
    assert params == {
        "text_generation_0": {
            "llm": {"generation_kwargs": {"temperature": "0.3", "max_new_tokens": "8"}},
            "input_batch_size": "8",
        },
        "load_0": {"batch_size": "4"},
    }


def test_value_keeps_everything_after_the_first_equals_sign() -> None:
    params = parse_runtime_parameters(["step.llm.api_key=abc=def==", "step.llm.stop=a.b"])
    assert params == {"step": {"llm": {"api_key": "abc=def==", "stop": "a.b"}}}


def test_json_arrays_and_objects_are_decoded_other_values_are_not() -> None:
    params = parse_runtime_parameters(
        [
            's.llm.generation_kwargs.stop=["\\n", "END"]',
            's.llm.default_headers={"X-Team": "data"}',
            "s.llm.generation_kwargs.seed=[not json",
            "s.flag=true",
        ]
    )
    assert params["s"]["llm"]["generation_kwargs"]["stop"] == ["\n", "END"]
    assert params["s"]["llm"]["default_headers"] == {"X-Team": "data"}
    assert params["s"]["llm"]["generation_kwargs"]["seed"] == "[not json"
    assert params["s"]["flag"] == "true"


@pytest.mark.parametrize("raw", ["temperature=0.3", "step.temperature", "=3", ".a=1", "a..b=1"])
def test_malformed_options_fail_with_the_expected_form(raw: str) -> None:
    with pytest.raises(PotstillUserError, match=r"expected STEP\.PARAMETER=VALUE"):
        parse_runtime_parameters([raw])


def test_an_option_that_sets_inside_another_value_conflicts() -> None:
    with pytest.raises(PotstillUserError, match="conflicts"):
        parse_runtime_parameters(["s.llm=x", "s.llm.timeout=3"])
    with pytest.raises(PotstillUserError, match="conflicts"):
        parse_runtime_parameters(["s.llm.timeout=3", "s.llm=x"])


def test_secret_looking_values_are_masked_when_echoed() -> None:
    assert mask_param("s.llm.api_key=sk-123") == "s.llm.api_key=**********"
    assert mask_param("s.llm.hf_token=hf_1") == "s.llm.hf_token=**********"
    assert mask_param("s.llm.generation_kwargs.max_new_tokens=8").endswith("=8")
    assert not is_secret_name("max_new_tokens")
    assert is_secret_name("API_KEY")


def test_default_headers_are_masked_when_echoed() -> None:
    """`default_headers` are secrets (never dumped), so the CLI does not echo them either."""
    whole = 's.llm.default_headers={"Authorization": "Bearer sk-1"}'
    assert mask_param(whole) == "s.llm.default_headers=**********"
    inside = "s.llm.default_headers.Authorization=Bearer sk-1"
    assert mask_param(inside) == "s.llm.default_headers.Authorization=**********"
    assert mask_param("api_key_checker.input_batch_size=8").endswith("=8")  # a step's name


def test_string_values_are_coerced_and_stored_with_their_types() -> None:
    """The strings a CLI passes become the field's type, also inside generation_kwargs."""
    llm = OpenAILLM(model="m", api_key="k", generation_kwargs={"top_p": 0.9})
    llm.set_runtime_parameters(
        {
            "timeout": "30",
            "max_retries": "2",
            "api_key": "from-cli",
            "generation_kwargs": {"temperature": "0.3", "max_new_tokens": "8", "seed": "7"},
        }
    )
    assert llm.timeout == 30.0 and isinstance(llm.timeout, float)
    assert llm.max_retries == 2
    assert llm.api_key is not None and llm.api_key.get_secret_value() == "from-cli"
    kwargs = llm.generation_kwargs
    assert kwargs == {"top_p": 0.9, "temperature": 0.3, "max_new_tokens": 8, "seed": 7}
    assert isinstance(kwargs["temperature"], float)
    assert isinstance(kwargs["max_new_tokens"], int) and isinstance(kwargs["seed"], int)


def test_a_string_that_does_not_fit_the_type_names_the_kwarg() -> None:
    llm = OpenAILLM(model="m", api_key="k")
    with pytest.raises(PotstillUserError, match="temperature='hot'"):
        llm.set_runtime_parameters({"generation_kwargs": {"temperature": "hot"}})
