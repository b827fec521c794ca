"""Structured output on every hosted provider, through its real SDK against the loopback
server: the request carries the schema in the API's own parameter, the answer validates, a
malformed answer is sent back with the validation error, and one that stays malformed is
`None` with the error and the raw answer kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest
from pydantic import BaseModel
from tests.fake_server import FakeServer
from tests.providers.cases import HOSTED, ProviderCase, cases
from tests.providers.contract import SPAIN, chat, loaded, received

from potstill.llms import InferenceEndpointsLLM, OpenAILLM
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import StructuredGeneration


class Capital(BaseModel):
    city: str
    country: str


def _response_format_schema(body: dict[str, Any]) -> Any:
    return body["response_format"]["json_schema"]["schema"]


# Where each provider's API takes the schema, read from the body the server received.
SENT_SCHEMA: dict[str, Callable[[dict[str, Any]], Any]] = {
    "OpenAILLM": _response_format_schema,
    "TogetherLLM": _response_format_schema,
    "AnyscaleLLM": _response_format_schema,
    "AzureOpenAILLM": _response_format_schema,
    "GroqLLM": _response_format_schema,
    "MistralLLM": _response_format_schema,
    "LiteLLM": _response_format_schema,
    # huggingface_hub sends TGI's form of a JSON schema `response_format`.
    "InferenceEndpointsLLM": lambda body: body["response_format"]["value"],
    "AnthropicLLM": lambda body: body["tools"][0]["input_schema"],
    "CohereLLM": lambda body: body["response_format"]["json_schema"],
    "OllamaLLM": lambda body: body["format"],
    "VertexAILLM": lambda body: body["generationConfig"]["responseJsonSchema"],
}


each = pytest.mark.parametrize("case", cases(), indirect=True)


def structured(case: ProviderCase, server: FakeServer, **fields: Any) -> Any:
    return loaded(
        case.make(server, structured_output={"format": "json", "schema": Capital}, **fields)
    )


def test_every_hosted_provider_says_where_it_sends_the_schema() -> None:
    assert sorted(SENT_SCHEMA) == sorted(case.id for case in HOSTED)
    assert all(case.cls.structured_output_formats for case in HOSTED)


@each
def test_the_request_carries_the_schema_and_the_answer_validates(
    case: ProviderCase, fake_server: FakeServer
) -> None:
    llm = structured(case, fake_server)

    (generations,) = llm.generate_outputs([chat(SPAIN)])

    assert json.loads(generations[0]) == {
        "city": "The capital of Spain is Madrid.",
        "country": ("The capital of Spain is Madrid."),
    }
    (request,) = received(fake_server, case.route)
    sent = SENT_SCHEMA[case.id](request.body)
    assert sent["properties"] == Capital.model_json_schema()["properties"]
    assert sorted(sent["required"]) == ["city", "country"]
    # The schema travels in the API's parameter, never in the prompt.
    assert "properties" not in json.dumps(request.body).replace(json.dumps(sent), "")


@each
def test_an_invalid_answer_is_sent_back_with_the_validation_error(
    case: ProviderCase, fake_server: FakeServer
) -> None:
    llm = structured(case, fake_server)

    (generations,) = llm.generate_outputs([chat(f"{SPAIN} [[invalid_output]]")])

    assert json.loads(generations[0])["city"].startswith("Echo: That answer is not valid")
    first, repair = received(fake_server, case.route)
    sent = json.dumps(repair.body)
    assert "city: Field required" in sent and "country: Field required" in sent
    assert "unexpected" in sent  # the invalid answer, as the assistant's turn
    assert (
        SENT_SCHEMA[case.id](repair.body)["properties"]
        == SENT_SCHEMA[case.id](first.body)["properties"]
    )
    assert generations.errors == [None]


@each
def test_an_answer_that_stays_invalid_is_none_with_the_error_and_the_raw_answer(
    case: ProviderCase, fake_server: FakeServer
) -> None:
    llm = structured(case, fake_server, structured_output_retries=1)

    bad, good = llm.generate_outputs([chat(f"{SPAIN} [[invalid_output=always]]"), chat(SPAIN)])

    assert bad == [None]
    assert bad.errors[0].startswith("structured output invalid after 1 repair attempt: ")
    assert "city: Field required" in bad.errors[0]
    assert json.loads(bad.raw_outputs[0]) == {"unexpected": True}
    assert json.loads(good[0])["country"] == "The capital of Spain is Madrid."
    assert len(received(fake_server, case.route, "invalid_output")) == 2


def test_openai_sends_a_strict_schema_when_it_has_one(fake_server: FakeServer) -> None:
    class Loose(BaseModel):
        city: str
        note: str = ""

    llm = loaded(
        OpenAILLM(model="gpt-4o-mini", base_url=fake_server.openai_base_url, api_key="test-key")
    )

    llm.generate_outputs([(chat(SPAIN), {"schema": Capital}), (chat(SPAIN), {"schema": Loose})])

    strict, loose = (
        request.body["response_format"]["json_schema"] for request in fake_server.requests
    )
    assert strict["strict"] is True and strict["schema"]["additionalProperties"] is False
    assert strict["name"] == "Capital"
    assert loose["strict"] is False and "additionalProperties" not in loose["schema"]


def test_a_regex_on_openai_is_told_in_the_prompt_and_checked(fake_server: FakeServer) -> None:
    llm = loaded(
        OpenAILLM(
            model="gpt-4o-mini",
            base_url=fake_server.openai_base_url,
            api_key="test-key",
            structured_output_retries=0,
        )
    )
    echo = {"format": "regex", "schema": r"Echo: .+"}
    digits = {"format": "regex", "schema": r"\d+"}

    matched, unmatched = llm.generate_outputs([(chat("hi"), echo), (chat("hi"), digits)])

    first, _ = fake_server.requests
    assert "response_format" not in first.body
    prompt = first.body["messages"][-1]["content"]
    assert prompt.startswith("hi\n\n") and prompt.endswith(
        "regular expression, without any other text: Echo: .+"
    )
    assert matched == [f"Echo: {' '.join(prompt.split())}"]
    assert unmatched == [None]
    assert "does not fully match the regular expression '\\\\d+'" in unmatched.errors[0]
    assert unmatched.raw_outputs[0].startswith("Echo: hi")


@pytest.fixture
def hf_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tests.providers.cases import hf_hub_for_loopback

    hf_hub_for_loopback(monkeypatch, tmp_path)


def test_tgi_text_generation_takes_a_json_schema_or_a_regex_as_its_grammar(
    fake_server: FakeServer, hf_hub: None, tmp_path: Path
) -> None:
    from tests.providers.test_inference_endpoints import CHAT_TEMPLATE
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordLevel(vocab={"[UNK]": 0}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(tmp_path / "tokenizer")
    llm = loaded(
        InferenceEndpointsLLM(
            base_url=f"{fake_server.url}/tgi",
            api_key="test-key",
            tokenizer_id=str(tmp_path / "tokenizer"),
        )
    )
    phone = {"format": "regex", "schema": r"\d{3}-\d{4}"}

    as_json, as_regex, invalid = llm.generate_outputs(
        [
            (chat(SPAIN), {"schema": Capital}),
            (chat("Call me"), phone),
            (chat("Call me [[invalid_output]]"), phone),
        ]
    )

    assert json.loads(as_json[0])["city"].startswith("Echo: ")
    assert as_regex == ["777-7777"]
    assert invalid == [None] and json.loads(invalid.raw_outputs[0]) == {"unexpected": True}
    # The three inputs are sent at once: requests are found by content, not by order.
    grammars = [request.body["parameters"]["grammar"] for request in fake_server.requests]
    assert grammars.count({"type": "json", "value": Capital.model_json_schema()}) == 1
    assert grammars.count({"type": "regex", "value": r"\d{3}-\d{4}"}) == 4  # 1 + 1 + 2 repairs
    repairs = [r for r in fake_server.requests if "That answer is not valid" in r.body["inputs"]]
    assert len(repairs) == 2 and all("[[invalid_output]]" in r.body["inputs"] for r in repairs)


def test_structured_generation_in_a_pipeline_keeps_the_error_and_raw_answer(
    fake_server: FakeServer, tmp_path: Path
) -> None:
    schema = {"format": "json", "schema": Capital.model_json_schema()}
    rows = [
        {"instruction": SPAIN, "structured_output": schema},
        {"instruction": f"{SPAIN} [[invalid_output=always]]", "structured_output": schema},
    ]
    with Pipeline(name="structured-provider", cache_dir=tmp_path) as pipeline:
        load = LoadDataFromDicts(data=rows)
        task = StructuredGeneration(
            name="capitals",
            llm=OpenAILLM(
                model="gpt-4o-mini",
                base_url=fake_server.openai_base_url,
                api_key="test-key",
                structured_output_retries=1,
            ),
            output_fields=["city"],
        )
        load >> task

    good, bad = pipeline.run(use_cache=False)["default"]["train"]

    assert json.loads(good["generation"])["country"] == "The capital of Spain is Madrid."
    assert good["city"] == "The capital of Spain is Madrid."
    assert bad["generation"] is None and bad["city"] is None
    metadata = bad["potstill_metadata"]
    assert "city: Field required" in metadata["error_capitals"]
    assert json.loads(metadata["raw_output_capitals"]) == {"unexpected": True}
    assert metadata["raw_input_capitals"][-1]["content"].startswith(SPAIN)
