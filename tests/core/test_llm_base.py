"""`LLM` / `AsyncLLM` basics: the contract, loading, `validate_call`, hidden states, usage."""

from __future__ import annotations

import logging
import pickle
from typing import Any, List, Optional

import pydantic
import pytest
from pydantic import validate_call
from tests.core.fakes import EchoLLM, SleepyAsyncLLM

from potstill.errors import LLMNotLoadedError, PotstillUserError
from potstill.llms import LLM, AsyncLLM, GenerateOutput, Generations, HiddenState
from potstill.llms.typing import TokenUsage
from potstill.steps.tasks.typing import ChatType

CHAT = [{"role": "user", "content": "hi"}]


def test_llm_and_async_llm_are_abstract() -> None:
    with pytest.raises(TypeError, match="abstract"):
        LLM()  # type: ignore[abstract]

    class NoAgenerate(AsyncLLM):
        @property
        def model_name(self) -> str:
            return "x"

    with pytest.raises(TypeError, match="agenerate"):
        NoAgenerate()  # type: ignore[abstract]


def test_public_types_are_exported() -> None:
    from potstill.llms import typing as llm_typing

    assert llm_typing.GenerateOutput is GenerateOutput
    assert llm_typing.HiddenState is HiddenState
    assert GenerateOutput == List[Optional[str]]


@pytest.mark.parametrize("llm_class", [EchoLLM, SleepyAsyncLLM])
def test_generate_before_load_says_to_call_load(llm_class: type[LLM]) -> None:
    llm = llm_class()

    with pytest.raises(LLMNotLoadedError) as info:
        llm.generate(inputs=[CHAT])

    message = str(info.value)
    assert llm_class.__name__ in message
    assert "load()" in message
    assert isinstance(info.value, PotstillUserError)
    assert not llm.is_loaded


@pytest.mark.asyncio
async def test_agenerate_before_load_says_to_call_load() -> None:
    llm = SleepyAsyncLLM()

    with pytest.raises(LLMNotLoadedError, match=r"call `llm.load\(\)` before `agenerate`"):
        await llm.agenerate(input=CHAT)


def test_load_then_unload() -> None:
    llm = EchoLLM()
    llm.load()
    assert llm.is_loaded
    assert llm.generate(inputs=[CHAT]) == [["hi #0"]]

    llm.unload()

    assert not llm.is_loaded
    with pytest.raises(LLMNotLoadedError, match="load"):
        llm.generate(inputs=[CHAT])


def test_subclass_load_that_skips_super_still_marks_loaded() -> None:
    class Minimal(LLM):
        def load(self) -> None:  # no super().load()
            pass

        @property
        def model_name(self) -> str:
            return "minimal"

        def generate(self, inputs: Any, num_generations: int = 1, **kwargs: Any) -> Any:
            return [["ok"] * num_generations for _ in inputs]

    llm = Minimal()
    llm.load()

    assert llm.generate([CHAT, CHAT], num_generations=2) == [["ok", "ok"], ["ok", "ok"]]


def test_model_name_and_logger_name() -> None:
    llm = EchoLLM(model="my-model")

    assert llm.model_name == "my-model"
    assert llm.logger.name == "potstill.llm.my-model"


def test_unknown_constructor_field_is_rejected() -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        EchoLLM(modle="typo")

    assert "modle" in str(info.value)
    assert "extra" in str(info.value).lower()


def test_validate_call_coerces_strings_and_rejects_wrong_types() -> None:
    llm = EchoLLM()
    llm.load()

    # strings from a CLI or YAML are coerced
    assert llm.generate(inputs=[CHAT], num_generations="2") == [["hi #0", "hi #1"]]
    assert llm.generate(inputs=[CHAT], temperature="0.5") == [["hi #0"]]

    with pytest.raises(pydantic.ValidationError) as info:
        llm.generate(inputs=[CHAT], temperature="very hot")
    assert "temperature" in str(info.value)

    with pytest.raises(pydantic.ValidationError) as info:
        llm.generate(inputs=[[{"role": "user"}]])
    assert "content" in str(info.value)


def test_generate_returns_one_list_per_input_with_num_generations_entries() -> None:
    llm = EchoLLM()
    llm.load()

    outputs = llm.generate(
        inputs=[[{"role": "user", "content": "a"}], [{"role": "user", "content": "b"}]],
        num_generations=3,
    )

    assert outputs == [["a #0", "a #1", "a #2"], ["b #0", "b #1", "b #2"]]


# -- hidden states ---------------------------------------------------------------------


class _Base(LLM):
    @property
    def model_name(self) -> str:
        return "hs"

    def generate(self, inputs: Any, num_generations: int = 1, **kwargs: Any) -> Any:
        return [[None] for _ in inputs]


def test_get_last_hidden_state_and_its_plural_alias() -> None:
    class Singular(_Base):
        def get_last_hidden_state(self, inputs: List[ChatType]) -> List[HiddenState]:
            return [f"singular:{len(inputs)}"]

    class Plural(_Base):
        def get_last_hidden_states(self, inputs: List[ChatType]) -> List[HiddenState]:
            return [f"plural:{len(inputs)}"]

    assert Singular().get_last_hidden_state([CHAT]) == ["singular:1"]
    assert Singular().get_last_hidden_states([CHAT, CHAT]) == ["singular:2"]
    assert Plural().get_last_hidden_state([CHAT]) == ["plural:1"]
    assert Plural().get_last_hidden_states([CHAT]) == ["plural:1"]


def test_get_last_hidden_state_not_implemented_names_the_class() -> None:
    class NoHidden(_Base):
        pass

    with pytest.raises(NotImplementedError, match="NoHidden"):
        NoHidden().get_last_hidden_state([CHAT])
    with pytest.raises(NotImplementedError, match="NoHidden"):
        NoHidden().get_last_hidden_states([CHAT])


# -- Generations and usage ---------------------------------------------------------------


def test_generations_is_a_plain_list_with_usage() -> None:
    generations = Generations.from_request(["a", "b"], input_tokens=5, output_tokens=7)

    assert generations == ["a", "b"]
    assert isinstance(generations, list)
    assert generations.input_tokens == [5, None]
    assert generations.output_tokens == [7, None]
    assert generations.errors == [None, None]
    assert generations.usage == TokenUsage(input_tokens=5, output_tokens=7)
    copy = pickle.loads(pickle.dumps(generations))
    assert copy == ["a", "b"]
    assert copy.input_tokens == [5, None]


def test_generations_concat_and_coerce() -> None:
    merged = Generations.concat(
        [
            Generations.from_request(["a"], input_tokens=2, output_tokens=1),
            Generations.failed(1, "boom"),
            Generations.from_request(["c"], input_tokens=2, output_tokens=3),
        ]
    )

    assert merged == ["a", None, "c"]
    assert merged.errors == [None, "boom", None]
    assert merged.usage == TokenUsage(input_tokens=4, output_tokens=4)
    assert Generations.coerce("x") == ["x"]
    assert Generations.coerce(None) == [None]
    coerced = Generations.coerce(
        {"generations": ["g"], "statistics": {"input_tokens": [3], "output_tokens": [4]}}
    )
    assert coerced == ["g"]
    assert coerced.usage == TokenUsage(3, 4)


def test_sync_llm_usage_is_recorded() -> None:
    llm = EchoLLM()
    llm.load()

    outputs = llm.generate_outputs(
        [[{"role": "user", "content": "one two"}], [{"role": "user", "content": "three"}]],
        num_generations=2,
    )

    assert [o.input_tokens for o in outputs] == [[2, 2], [1, 1]]
    usage = llm.usage
    assert usage.requests == 2
    assert usage.failed_requests == 0
    assert usage.input_tokens == 2 + 2 + 1 + 1
    assert usage.output_tokens == 3 * 2 + 2 * 2


def test_sync_llm_failure_is_isolated_to_its_input_and_logged_with_row(
    caplog: pytest.LogCaptureFixture,
) -> None:
    llm = EchoLLM()
    llm.load()
    inputs = [[{"role": "user", "content": text}] for text in ("ok", "fail me", "fine")]

    with caplog.at_level(logging.WARNING, logger="potstill"):
        outputs = llm.generate_outputs(inputs, num_generations=2, row_offset=10)

    assert outputs == [["ok #0", "ok #1"], [None, None], ["fine #0", "fine #1"]]
    assert outputs[1].errors[0] is not None and "cannot answer" in outputs[1].errors[0]
    messages = [r.getMessage() for r in caplog.records]
    assert any("row 11" in m and "cannot answer" in m for m in messages), messages
    assert llm.usage.failed_requests == 1


def test_generation_kwargs_are_validated_at_construction() -> None:
    # raised from a model validator, so pydantic wraps it (still a ValueError)
    with pytest.raises(ValueError) as info:
        EchoLLM(generation_kwargs={"temprature": 0.5})
    assert "Unknown generation kwarg 'temprature'" in str(info.value)
    assert "Did you mean 'temperature'" in str(info.value)

    with pytest.raises(ValueError) as info:
        EchoLLM(generation_kwargs={"temperature": "hot"})
    assert "temperature='hot'" in str(info.value)
    assert "EchoLLM" in str(info.value)


def test_generate_with_kwargs_only_llm_accepts_any_generation_kwarg() -> None:
    class KwargsLLM(LLM):
        @property
        def model_name(self) -> str:
            return "kw"

        @validate_call
        def generate(
            self, inputs: List[ChatType], num_generations: int = 1, **kwargs: Any
        ) -> List[GenerateOutput]:
            return [[repr(sorted(kwargs.items()))] for _ in inputs]

    llm = KwargsLLM(generation_kwargs={"anything": 1})
    llm.load()

    assert llm.runtime_parameters_names["generation_kwargs"] == {}
    assert llm.generate([CHAT], **llm.get_generation_kwargs()) == [["[('anything', 1)]"]]
