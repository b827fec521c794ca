"""AnthropicLLM: its pure request building and answer parsing, and its wire format through
the real `anthropic` SDK against the loopback Messages API. What every hosted provider
shares is in `test_contract.py`."""

from __future__ import annotations

from typing import Any

import pytest
from anthropic.types import Message
from tests.fake_server import FakeServer
from tests.providers.contract import (
    MADRID,
    SPAIN,
    chat,
    loaded,
    multi_turn,
)

from potstill.llms import AnthropicLLM
from potstill.llms.anthropic import build_request, parse_response

MODEL = "claude-potstill-test"


def make(server: FakeServer, **kwargs) -> AnthropicLLM:
    kwargs.setdefault("api_key", "test-key")
    kwargs.setdefault("model", MODEL)
    return AnthropicLLM(base_url=server.url, **kwargs)


# -- request building and answer parsing (no server) ----------------------------------------------


def test_build_request_moves_the_system_prompt_and_sends_sampling_as_extra_body() -> None:
    conversation = [{"role": "system", "content": "One."}, *multi_turn()]
    original = [dict(message) for message in conversation]

    request = build_request(
        MODEL, conversation, max_tokens=64, stop_sequences=None, temperature=0.3, top_p=None
    )

    assert request == {
        "model": MODEL,
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": SPAIN},
        ],
        "system": "One.\n\nBe brief.",
        "max_tokens": 64,
        "extra_body": {"temperature": 0.3},
    }
    assert conversation == original, "the input is not mutated"
    assert build_request(MODEL, chat(SPAIN), temperature=None)["extra_body"] is None


def message(content: list[dict[str, Any]], stop_reason: str = "end_turn") -> Message:
    return Message.model_validate(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": 5, "output_tokens": 6},
        }
    )


def test_parse_response_joins_the_text_blocks() -> None:
    answer = message(
        [
            {"type": "thinking", "thinking": "hmm", "signature": "s"},
            {"type": "text", "text": "The capital "},
            {"type": "text", "text": "is Madrid."},
        ]
    )

    generations = parse_response(answer)

    assert generations == ["The capital is Madrid."]
    assert (generations.input_tokens, generations.output_tokens) == ([5], [6])
    assert generations.errors == [None]


def test_parse_response_without_text_is_none_with_the_stop_reason() -> None:
    generations = parse_response(message([], stop_reason="max_tokens"))

    assert generations == [None]
    assert generations.errors == ["no text content (stop_reason=max_tokens)"]


# -- the wire --------------------------------------------------------------------------------------


def test_system_prompt_roles_and_kwargs_reach_the_api(fake_server: FakeServer) -> None:
    llm = loaded(make(fake_server))
    conversation = multi_turn()
    original = [dict(message) for message in conversation]

    outputs = llm.generate(
        [conversation],
        max_tokens=64,
        stop_sequences=["\n\nHuman:"],
        temperature=0.3,
        top_p=0.9,
        top_k=40,
    )

    assert outputs == [[MADRID]]
    assert conversation == original, "the input is not mutated"
    (request,) = fake_server.requests
    assert request.path == "/v1/messages"
    assert request.body == {
        "model": MODEL,
        "system": "Be brief.",
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": SPAIN},
        ],
        "max_tokens": 64,
        "stop_sequences": ["\n\nHuman:"],
        "temperature": 0.3,
        "top_p": 0.9,
        "top_k": 40,
    }
    assert request.headers["x-api-key"] == "test-key"
    assert "authorization" not in request.headers
    assert request.headers["anthropic-version"]
    assert outputs[0].input_tokens == [2 + 1 + 1 + 5]  # system, user, assistant, user
    assert outputs[0].output_tokens == [6]


def test_defaults_send_distilabels_values_and_omit_unset(fake_server: FakeServer) -> None:
    llm = loaded(make(fake_server))

    assert llm.generate([chat(SPAIN)]) == [[MADRID]]

    body = fake_server.requests[0].body
    assert body == {
        "model": MODEL,
        "messages": [{"role": "user", "content": SPAIN}],
        "max_tokens": 128,
        "temperature": 1.0,
    }


def test_max_tokens_and_stop_sequences_shape_the_answer(fake_server: FakeServer) -> None:
    llm = loaded(make(fake_server))

    outputs = llm.generate([chat(SPAIN), chat(SPAIN)], max_tokens=2, stop_sequences=["Madrid"])

    assert outputs == [["The capital"], ["The capital"]]


@pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")
@pytest.mark.parametrize(
    "model", ["claude-3-opus-20240229", "my-gateway/claude-custom", "claude-sonnet-4-5"]
)
def test_any_model_name_is_accepted(fake_server: FakeServer, model: str) -> None:
    # distilabel's allow-list rejects the first two here
    llm = loaded(make(fake_server, model=model))

    assert llm.generate([chat(SPAIN)]) == [[MADRID]]
    assert fake_server.requests[0].body["model"] == model
    assert llm.model_name == model


def test_fields_and_dump(fake_server: FakeServer) -> None:
    llm = make(fake_server, timeout=30, http_client=object())

    dump = llm.dump()

    assert dump["model"] == MODEL
    assert dump["base_url"] == fake_server.url
    assert dump["timeout"] == 30
    assert dump["max_retries"] == 6
    assert "http_client" not in dump
    assert "api_key" not in dump
    names = [item["name"] for item in llm.get_runtime_parameters_info()]
    assert {"base_url", "api_key", "timeout", "max_retries", "generation_kwargs"} <= set(names)
    kwargs = next(i for i in llm.get_runtime_parameters_info() if i["name"] == "generation_kwargs")
    assert [key["name"] for key in kwargs["keys"]] == [
        "max_tokens",
        "stop_sequences",
        "temperature",
        "top_p",
        "top_k",
    ]


def test_unknown_generation_kwarg_fails_early(fake_server: FakeServer) -> None:
    with pytest.raises(ValueError, match="Unknown generation kwarg 'max_new_tokens'"):
        make(fake_server, generation_kwargs={"max_new_tokens": 5})
