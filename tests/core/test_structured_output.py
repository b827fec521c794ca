"""Structured output in the LLM layer (`potstill.llms.structured`): the field and its checks,
answer validation, the repair loop on both batch paths, and the `StructuredGeneration` task."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import pytest
from pydantic import BaseModel, ValidationError, field_validator

from potstill.llms import LLM
from potstill.llms.json_schema_model import schema_validator
from potstill.llms.structured import StructuredOutput, with_instruction
from potstill.llms.testing import FunctionLLM, TestLLM
from potstill.llms.typing import Generations
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import StructuredGeneration, TextGeneration
from potstill.typing import ChatType


class City(BaseModel):
    name: str
    population: int


HI = [{"role": "user", "content": "hi"}]
CITY = '{"name": "Paris", "population": 2100000}'


# -- the field ------------------------------------------------------------------------------


def test_every_llm_has_the_field_and_dumps_a_model_as_its_json_schema() -> None:
    llm = TestLLM(structured_output={"schema": City})

    assert llm.structured_output == {"schema": City, "format": "json"}
    dump = llm.dump()
    assert dump["structured_output"] == {"schema": City.model_json_schema(), "format": "json"}
    rebuilt = TestLLM.from_dict(json.loads(json.dumps(dump)))
    assert rebuilt.structured_output_spec().schema == City.model_json_schema()
    assert TestLLM().dump()["structured_output"] is None
    assert "structured_output" in TestLLM().runtime_parameters_names
    assert "structured_output_retries" not in TestLLM().cache_identity()  # ExecutionOnly


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"format": "xml", "schema": {}}, "format 'xml' is not supported"),
        ({"format": "json"}, "needs a 'schema'"),
        ({"format": "json", "schema": 3}, "takes a pydantic model class or a JSON schema"),
        ({"format": "regex", "schema": "("}, "not a valid regular expression"),
        ({"format": "json", "schema": {}, "grammar": "x"}, r"unknown key\(s\) \['grammar'\]"),
        ({"schema": {}, "max_retries": -1}, "max_retries must be an integer >= 0"),
        ("not json", "must be JSON"),
    ],
)
def test_a_bad_structured_output_fails_naming_what_to_fix(value: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TestLLM(structured_output=value)


def test_the_field_takes_json_text_from_a_cli_or_yaml_parameter() -> None:
    llm = TestLLM()
    llm.set_runtime_parameters(
        {"structured_output": '{"format": "regex", "schema": "[0-9]+"}', "generation_kwargs": {}}
    )

    assert llm.structured_output == {"format": "regex", "schema": "[0-9]+"}


def test_structured_output_is_not_a_generation_kwarg() -> None:
    from potstill.llms import OpenAILLM

    llm = OpenAILLM(model="m", api_key="k")
    assert "structured_output" not in OpenAILLM.generation_spec().names()
    assert "structured_output" in [parameter.name for parameter in llm.generate_parameters]


# -- checking answers -------------------------------------------------------------------------


def test_answers_are_validated_with_the_pydantic_model_itself() -> None:
    class Shouting(BaseModel):
        word: str

        @field_validator("word")
        @classmethod
        def _upper(cls, value: str) -> str:
            if not value.isupper():
                raise ValueError("must be upper case")
            return value

    spec = StructuredOutput.from_value({"schema": Shouting})

    assert spec.check('{"word": "HEY"}') == ('{"word":"HEY"}', None)
    value, error = spec.check('{"word": "hey"}')
    assert value is None and error == "word: Value error, must be upper case"


def test_json_is_found_inside_code_fences_and_prose() -> None:
    spec = StructuredOutput.from_value({"schema": City})

    fenced = f"```json\n{CITY}\n```"
    prose = f"Sure! Here it is: {CITY} Hope it helps."
    assert spec.check(fenced)[0] == spec.check(prose)[0] == '{"name":"Paris","population":2100000}'
    assert spec.check("no json here")[1].startswith("Invalid JSON")


def test_a_json_schema_dict_is_validated_strictly_and_keeps_only_what_was_given() -> None:
    spec = StructuredOutput.from_value({"schema": City.model_json_schema()})

    assert spec.check('{"name": "Paris", "population": 2}')[0] == '{"name":"Paris","population":2}'
    assert spec.check('{"name": "Paris", "population": "2"}')[1] == (
        "population: Input should be a valid integer"
    )
    assert spec.check('{"population": 2}')[1] == "name: Field required"


def test_a_regex_must_match_the_whole_answer() -> None:
    spec = StructuredOutput.from_value({"format": "regex", "schema": r"\d{3}"})

    assert spec.check(" 123\n") == ("123", None)
    assert "does not fully match" in spec.check("1234")[1]


def test_the_schema_validator_covers_what_structured_output_schemas_use() -> None:
    schema = {
        "$defs": {"Tag": {"type": "string", "enum": ["a", "b"]}},
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"$ref": "#/$defs/Tag"}, "minItems": 1},
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "kind": {"const": "x"},
            "a-b": {"type": "boolean"},
        },
        "required": ["tags", "score", "kind"],
        "additionalProperties": False,
    }
    adapter = schema_validator(schema)

    value = adapter.validate_json('{"tags": ["a"], "score": 0.5, "kind": "x", "a-b": true}')
    assert adapter.dump_python(value, by_alias=True, exclude_unset=True) == {
        "tags": ["a"],
        "score": 0.5,
        "kind": "x",
        "a-b": True,
    }
    for bad in (
        '{"tags": [], "score": 0.5, "kind": "x"}',
        '{"tags": ["c"], "score": 0.5, "kind": "x"}',
        '{"tags": ["a"], "score": 2, "kind": "x"}',
        '{"tags": ["a"], "score": 0.5, "kind": "y"}',
        '{"tags": ["a"], "score": 0.5, "kind": "x", "extra": 1}',
    ):
        with pytest.raises(ValidationError):
            adapter.validate_json(bad)


def test_strict_and_closed_forms_of_a_schema() -> None:
    class Loose(BaseModel):
        name: str
        note: Optional[str] = None

    strict = StructuredOutput.from_value({"schema": City}).strict_schema()
    assert strict["additionalProperties"] is False and strict["required"] == ["name", "population"]
    assert StructuredOutput.from_value({"schema": Loose}).strict_schema() is None
    closed = StructuredOutput.from_value({"schema": Loose}).closed_schema()
    assert closed["additionalProperties"] is False and closed["required"] == ["name"]


def test_equal_values_share_one_structured_output() -> None:
    first = StructuredOutput.from_value({"schema": City.model_json_schema()})
    second = StructuredOutput.from_value({"format": "json", "schema": City.model_json_schema()})

    assert first is second
    assert str(first) == str(StructuredOutput.from_value({"schema": City}))
    assert "0x" not in repr(first)  # what request keys hash


def test_the_instruction_goes_into_the_last_user_message() -> None:
    system = {"role": "system", "content": "Be brief."}

    assert with_instruction([system, *HI], "Use JSON.") == [
        system,
        {"role": "user", "content": "hi\n\nUse JSON."},
    ]
    assert with_instruction([system], "Use JSON.")[-1] == {"role": "user", "content": "Use JSON."}


# -- the repair loop, async path (an AsyncLLM without native constraints) ---------------------


def scripted(*answers: str) -> tuple[FunctionLLM, list[ChatType]]:
    """An LLM answering the given texts in turn, and the conversations it was sent."""
    seen: list[ChatType] = []
    replies = iter(answers)

    def answer(input: ChatType, **kwargs: Any) -> str:
        seen.append(input)
        return next(replies)

    return FunctionLLM(function=answer, structured_output={"schema": City}), seen


def test_an_invalid_answer_is_repaired_with_the_error_fed_back() -> None:
    llm, seen = scripted('{"name": "Paris"}', CITY)
    llm.load()

    (generations,) = llm.generate_outputs([HI])

    assert generations == ['{"name":"Paris","population":2100000}']
    first, repair = seen
    assert first[-1]["content"].startswith("hi\n\nAnswer with only a JSON value")
    assert repair[:-2] == first
    assert repair[-2] == {"role": "assistant", "content": '{"name": "Paris"}'}
    assert repair[-1]["content"].startswith("That answer is not valid: population: Field required")
    assert llm.usage.requests == 2


def test_after_the_retries_the_generation_is_none_with_error_and_raw_output() -> None:
    llm, seen = scripted("nope", "still nope", CITY)
    llm.structured_output_retries = 1
    llm.load()

    (generations,) = llm.generate_outputs([HI])

    assert generations == [None]
    assert generations.errors[0].startswith("structured output invalid after 1 repair attempt: ")
    assert generations.raw_outputs == ["still nope"]
    assert len(seen) == 2


def test_a_spec_may_set_its_own_retries_and_a_row_its_own_spec() -> None:
    llm, seen = scripted("bad", "12")
    llm.load()

    (generations,) = llm.generate_outputs(
        [(HI, {"format": "regex", "schema": r"\d+", "max_retries": 0})]
    )

    assert generations == [None] and len(seen) == 1
    assert "regular expression" in seen[0][-1]["content"]  # the row's spec, not the field's


def test_repairs_are_kept_in_the_journal_not_the_invalid_answer(tmp_path: Path) -> None:
    answers = iter(['{"name": "Paris"}', CITY])
    llm = FunctionLLM(
        function=lambda input, **kwargs: next(answers),
        structured_output={"schema": City},
        use_response_cache=True,
        response_cache_dir=str(tmp_path),
    )
    llm.load()

    first = llm.generate_outputs([HI])
    again = llm.generate_outputs([HI])

    assert first == again == [['{"name":"Paris","population":2100000}']]
    assert llm.usage.cached_requests == 1


# -- the repair loop, synchronous path --------------------------------------------------------


class ListLLM(LLM):
    """A synchronous LLM answering from a list, recording each batch it gets."""

    answers: list[str]
    batches: list[list[ChatType]] = []

    @property
    def model_name(self) -> str:
        return "list"

    def generate(
        self, inputs: list[ChatType], num_generations: int = 1, **kwargs: Any
    ) -> list[Generations]:
        self.batches.append(list(inputs))
        return [Generations([self.answers.pop(0)]) for _ in inputs]


def test_the_synchronous_path_groups_inputs_by_spec_and_repairs() -> None:
    llm = ListLLM(answers=["plain", "plain", '{"name": 1}', CITY, "7"], batches=[])
    llm.load()
    digits = {"format": "regex", "schema": r"\d+"}

    plain, city, number, plain_too = llm.generate_outputs(
        [HI, (HI, {"schema": City}), (HI, digits), HI]
    )

    assert plain == plain_too == ["plain"] and number == ["7"]
    assert city == ['{"name":"Paris","population":2100000}']
    # One batch per spec (the inputs without one together), and one per repair.
    assert [len(batch) for batch in llm.batches] == [2, 1, 1, 1]
    assert llm.batches[0] == [HI, HI]
    repair = llm.batches[2][0]
    assert repair[-2] == {"role": "assistant", "content": '{"name": 1}'}
    assert repair[-1]["content"].startswith("That answer is not valid: name: Input should be")


# -- the task ---------------------------------------------------------------------------------


def test_structured_generation_writes_the_json_and_the_fields_asked_for(tmp_path: Path) -> None:
    def answer(input: ChatType, **kwargs: Any) -> str:
        return CITY if "city" in input[-1]["content"] else "ABC-12"

    rows = [
        {
            "instruction": "a city",
            "structured_output": {"schema": json.dumps(City.model_json_schema())},
        },
        {"instruction": "a code", "structured_output": {"format": "regex", "schema": "[A-Z-0-9]+"}},
        {"instruction": "a city", "structured_output": {"format": "yaml"}},
    ]
    with Pipeline(name="structured", cache_dir=tmp_path) as pipeline:
        task = StructuredGeneration(
            name="gen", llm=FunctionLLM(function=answer), output_fields=["name", "population"]
        )
        LoadDataFromDicts(data=rows) >> task

    city, code, broken = pipeline.run(use_cache=False)["default"]["train"]

    assert json.loads(city["generation"]) == {"name": "Paris", "population": 2100000}
    assert (city["name"], city["population"]) == ("Paris", 2100000)
    assert code["generation"] == "ABC-12" and code["name"] is None
    assert broken["generation"] is None
    assert "column `structured_output`" in broken["potstill_metadata"]["error_gen"]
    # The task's conversation (the instruction the LLM layer adds is not part of it).
    assert city["potstill_metadata"]["raw_input_gen"] == [{"role": "user", "content": "a city"}]


def test_structured_generation_columns() -> None:
    llm = TestLLM()
    assert StructuredGeneration(llm=llm).inputs == {
        "instruction": True,
        "structured_output": True,
        "system_prompt": False,
    }
    assert StructuredGeneration(llm=llm).outputs == ["generation", "model_name"]
    assert StructuredGeneration(llm=llm, output_fields=["a"], keep_generation=False).outputs == [
        "a",
        "model_name",
    ]


def test_a_task_without_structured_output_is_unchanged() -> None:
    task = TextGeneration(llm=TestLLM())
    task.load()

    (row,) = next(task.process([{"instruction": "hi"}]))

    assert row["generation"] == "hi #0"
    assert row["potstill_metadata"]["raw_output_text_generation_0"] == "hi #0"
    assert row["potstill_metadata"]["raw_input_text_generation_0"] == HI


# -- UltraFeedback's default structured output ------------------------------------------------


def test_ultrafeedback_asks_for_a_json_verdict_sized_to_the_row() -> None:
    from potstill.steps.tasks import UltraFeedback

    judge = UltraFeedback(llm=TestLLM(), use_default_structured_output=True)
    row = {"instruction": "Why sleep?", "generations": ["Rest.", "Because.", "Dreams."]}

    conversation, structured_output = judge.format_input(row)

    assert conversation == UltraFeedback(llm=TestLLM()).format_input(row)
    schema = structured_output["schema"]
    assert list(schema["properties"]) == ["ratings", "rationales"]
    assert schema["properties"]["ratings"]["minItems"] == 3
    assert schema["properties"]["ratings"]["items"] == {"enum": [1, 2, 3, 4, 5]}
    assert "minItems" not in judge.get_structured_output()["schema"]["properties"]["ratings"]
    typed = UltraFeedback(llm=TestLLM(), aspect="helpfulness").get_structured_output(2)
    assert list(typed["schema"]["properties"]) == [
        "types",
        "rationales",
        "ratings",
        "rationales-for-ratings",
    ]


def test_ultrafeedback_reads_the_json_verdict(tmp_path: Path) -> None:
    from potstill.steps.tasks import UltraFeedback

    def verdict(input: ChatType, **kwargs: Any) -> str:
        if "Bad" in input[-1]["content"]:
            return '{"ratings": [9, 1], "rationales": ["x", "y"]}'
        return '{"ratings": [4, 2], "rationales": ["Clear.", "Vague."]}'

    rows = [
        {"instruction": "Why sleep?", "generations": ["Rest.", "Because."]},
        {"instruction": "Bad", "generations": ["a", "b"]},
    ]
    with Pipeline(name="ultrafeedback-json", cache_dir=tmp_path) as pipeline:
        judge = UltraFeedback(
            name="judge",
            llm=FunctionLLM(function=verdict, structured_output_retries=0),
            use_default_structured_output=True,
        )
        LoadDataFromDicts(data=rows) >> judge

    good, bad = pipeline.run(use_cache=False)["default"]["train"]

    assert good["ratings"] == [4, 2] and good["rationales"] == ["Clear.", "Vague."]
    assert good["potstill_metadata"]["error_judge"] is None
    assert bad["ratings"] == [None, None]
    assert "ratings.0: Input should be 1, 2, 3, 4 or 5" in bad["potstill_metadata"]["error_judge"]
