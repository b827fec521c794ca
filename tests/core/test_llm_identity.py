"""What identifies an LLM's answers: the canonical text that request keys and step signatures
hash, and the `ExecutionOnly` fields that are left out of both."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from pydantic import Field

from potstill.llms.cache import request_key
from potstill.llms.testing import TestLLM
from potstill.mixins.runtime_parameters import RuntimeParameter
from potstill.pipeline import Pipeline
from potstill.pipeline.signature import signature_dump, step_signatures
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration
from potstill.utils.canonical_json import canonical_json
from potstill.utils.fields import ExecutionOnly, execution_only_fields, without_execution_fields


def scale(value: float) -> float:
    """A callable kwarg, as vLLM's logits processors are."""
    return value


def test_the_canonical_text_sorts_keys_at_every_depth_and_writes_tuples_as_lists() -> None:
    first = canonical_json({"b": 1, "a": {"y": [1, (2, 3)], "x": None}})
    second = canonical_json({"a": {"x": None, "y": [1, [2, 3]]}, "b": 1})
    assert first == second == '{"a": {"x": null, "y": [1, [2, 3]]}, "b": 1}'


def test_the_canonical_text_names_callables_without_their_address() -> None:
    text = canonical_json({"processors": [scale]})
    assert "0x" not in text
    assert "test_llm_identity.scale" in text
    assert canonical_json({"processors": [lambda value: value]}) != text


def test_the_canonical_text_takes_lone_surrogates_and_mixed_key_types() -> None:
    assert canonical_json("cut \ud83d") == '"cut \\ud83d"'
    assert canonical_json({1: "a", "b": 2, None: 3}) == '{"1": "a", "b": 2, "null": 3}'


def test_a_request_key_is_pinned_to_its_format() -> None:
    # Changing the text of a request changes every stored key: raise `CANONICAL_FORMAT` then,
    # and update this value.
    key = request_key({"model": "m"}, [{"role": "user", "content": "hi"}], {"t": 0.5}, 1, None)
    text = '[1, {"model": "m"}][[{"content": "hi", "role": "user"}], {"t": 0.5}, 1, null]'
    assert key == hashlib.blake2b(text.encode("ascii"), digest_size=20).hexdigest()
    assert key == "d33a3a88b8b3c583a0976814c0d829f81e2fa715"


def test_request_keys_ignore_the_order_of_nested_kwargs_but_not_their_values() -> None:
    chat = [{"role": "user", "content": "hi"}]
    one = request_key({}, chat, {"extra": {"a": 1, "b": 2}}, 1, None)
    assert one == request_key({}, chat, {"extra": {"b": 2, "a": 1}}, 1, None)
    assert one != request_key({}, chat, {"extra": {"a": 1, "b": 3}}, 1, None)
    assert one != request_key({}, chat, {"extra": {"a": 1, "b": 2}}, 1, 0)


class LimitedLLM(TestLLM):
    """A test LLM with one setting that changes answers and one that does not."""

    persona: str = "plain"
    patience: ExecutionOnly[RuntimeParameter[float]] = Field(
        default=1.0, description="How long to wait (changes no answer)."
    )


class MoreLimitedLLM(LimitedLLM):
    """Declares `patience` again, with another default and without the marker."""

    patience: RuntimeParameter[float] = Field(default=2.0, description="Longer.")


def test_marked_fields_are_left_out_of_the_identity_and_others_kept() -> None:
    fields = execution_only_fields(LimitedLLM)
    assert {"patience", "max_retries", "use_response_cache"} <= fields
    assert "persona" not in fields
    identity = LimitedLLM(patience=5.0, persona="pirate").cache_identity()
    assert "patience" not in identity
    assert identity["persona"] == "pirate"
    assert LimitedLLM(patience=5.0).cache_identity() == LimitedLLM(patience=9.0).cache_identity()


def test_a_field_declared_again_keeps_the_marker_of_the_class_it_overrides() -> None:
    assert "patience" in execution_only_fields(MoreLimitedLLM)
    assert "patience" not in MoreLimitedLLM(patience=3.0).cache_identity()


def test_only_the_llms_own_top_level_fields_are_left_out() -> None:
    dump = {"patience": 1, "persona": "x", "generation_kwargs": {"patience": 2}}
    assert without_execution_fields(dump, LimitedLLM) == {
        "persona": "x",
        "generation_kwargs": {"patience": 2},
    }


def signatures(llm: Any) -> dict[str, str]:
    with Pipeline(name="identity") as pipeline:
        LoadDataFromDicts(data=[{"instruction": "q"}]) >> TextGeneration(llm=llm)
    return step_signatures(pipeline.dag)


@pytest.mark.parametrize(
    ("changed", "same"),
    [({"patience": 7.0, "max_retries": 0}, True), ({"persona": "pirate"}, False)],
)
def test_step_signatures_change_with_the_llms_answers_only(
    changed: dict[str, Any], same: bool
) -> None:
    before = signatures(LimitedLLM())
    after = signatures(LimitedLLM(**changed))
    assert (before == after) is same
    llm_dump = signature_dump(TextGeneration(llm=LimitedLLM(**changed)))["llm"]
    assert "patience" not in llm_dump and "max_retries" not in llm_dump
