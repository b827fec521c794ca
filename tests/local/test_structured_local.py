"""Constrained decoding on local models: Transformers with llguidance on a tiny random model
whose tokenizer can spell any text (its output is JSON only because of the grammar), and
the structured-output parameters vLLM gets (checked without the engine)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import BaseModel, Field

from potstill.errors import PotstillUserError
from potstill.llms import TransformersLLM
from potstill.llms.structured import StructuredOutput
from potstill.llms.vllm import structured_output_params

pytest.importorskip("llguidance")
pytest.importorskip("transformers")

HI = [{"role": "user", "content": "hi"}]
FLAG = {
    "type": "object",
    "properties": {"colour": {"enum": ["red", "green"]}, "ok": {"type": "boolean"}},
    "required": ["colour", "ok"],
}


class Pet(BaseModel):
    name: str = Field(max_length=6)  # a random model writes a free string to the limit
    legs: bool


@pytest.fixture(scope="module")
def llm(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.local.tiny_hf import build_tiny_byte_model

    model = TransformersLLM(model=str(build_tiny_byte_model(tmp_path_factory.mktemp("bytes"))))
    model.load()
    yield model
    model.unload()


def test_the_random_model_writes_no_json_by_itself(llm: TransformersLLM) -> None:
    (output,) = llm.generate([HI], max_new_tokens=30, do_sample=False)

    with pytest.raises(ValueError):
        json.loads(output[0])


def test_a_json_schema_constrains_every_sequence_of_the_batch(llm: TransformersLLM) -> None:
    llm.structured_output = {"format": "json", "schema": FLAG}
    try:
        outputs = llm.generate_outputs(
            [HI, [{"role": "user", "content": "a colour please"}]],
            num_generations=2,
            max_new_tokens=40,
        )
    finally:
        llm.structured_output = None

    values = [json.loads(text) for generations in outputs for text in generations]
    assert len(values) == 4
    assert all(set(value) == {"colour", "ok"} for value in values)
    assert all(value["colour"] in ("red", "green") for value in values)
    assert all(generations.errors == [None, None] for generations in outputs)


def test_each_input_gets_its_own_grammar(llm: TransformersLLM) -> None:
    pet, phone = llm.generate_outputs(
        [(HI, {"schema": Pet}), (HI, {"format": "regex", "schema": r"[0-9]{3}-[0-9]{4}"})],
        max_new_tokens=60,
    )

    assert isinstance(Pet.model_validate_json(pet[0]), Pet)
    assert len(phone[0]) == 8 and phone[0][3] == "-" and phone[0].replace("-", "").isdigit()


def test_a_direct_generate_call_uses_the_field(llm: TransformersLLM) -> None:
    llm.structured_output = {"format": "regex", "schema": "(yes|no)"}
    try:
        (output,) = llm.generate([HI], max_new_tokens=10)
    finally:
        llm.structured_output = None

    assert output[0] in ("yes", "no")


@dataclass
class StructuredOutputsParams:
    json: Any = None
    regex: Any = None


@dataclass
class GuidedDecodingParams:
    json: Any = None
    regex: Any = None


VLLM_PARAMS = SimpleNamespace(
    StructuredOutputsParams=StructuredOutputsParams, GuidedDecodingParams=GuidedDecodingParams
)


def test_vllm_gets_its_structured_output_parameters() -> None:
    json_spec = StructuredOutput.from_value({"schema": FLAG})
    regex_spec = StructuredOutput.from_value({"format": "regex", "schema": r"\d+"})

    new = structured_output_params(json_spec, {"n", "structured_outputs"}, VLLM_PARAMS)
    old = structured_output_params(regex_spec, {"n", "guided_decoding"}, VLLM_PARAMS)

    assert new == {"structured_outputs": StructuredOutputsParams(json=json_spec.closed_schema())}
    assert new["structured_outputs"].json["additionalProperties"] is False
    assert old == {"guided_decoding": GuidedDecodingParams(regex=r"\d+")}
    with pytest.raises(PotstillUserError, match="upgrade vLLM"):
        structured_output_params(json_spec, {"n"}, VLLM_PARAMS)


def test_vllm_takes_json_and_regex_natively(tmp_path: Path) -> None:
    from potstill.llms import vLLM

    assert vLLM(model=str(tmp_path)).native_structured_formats() == ("json", "regex")
