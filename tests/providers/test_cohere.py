"""CohereLLM: its pure request building and answer parsing, and its wire format through the
real `cohere` SDK (v2 client) against the loopback Chat API. What every hosted provider
shares is in `test_contract.py`."""

from __future__ import annotations

from typing import Any

import pytest
from cohere import V2ChatResponse
from tests.fake_server import FakeServer
from tests.providers.contract import (
    MADRID,
    SPAIN,
    chat,
    loaded,
    multi_turn,
    received,
)

from potstill.llms import CohereLLM
from potstill.llms.cohere import build_request, parse_response

PROVIDER = "cohere"
MODEL = "command-r-plus"

# The cohere SDK itself uses a pydantic v1 attribute when it parses responses.
pytestmark = pytest.mark.filterwarnings("ignore:The `__fields__` attribute is deprecated")


def make(server: FakeServer, **kwargs) -> CohereLLM:
    kwargs.setdefault("api_key", "test-key")
    kwargs.setdefault("model", MODEL)
    return CohereLLM(base_url=server.url, **kwargs)


# -- request building and answer parsing (no server) ----------------------------------------------


def test_build_request_sends_the_messages_and_only_the_kwargs_that_are_set() -> None:
    conversation = [{"role": "user", "content": SPAIN, "name": "ignored"}]

    request = build_request(MODEL, conversation, temperature=0.3, k=None, seed=7)

    assert request == {
        "model": MODEL,
        "messages": [{"role": "user", "content": SPAIN}],
        "temperature": 0.3,
        "seed": 7,
    }


def response(content: list[dict[str, Any]], usage: dict[str, Any]) -> V2ChatResponse:
    return V2ChatResponse.model_validate(
        {
            "id": "r",
            "finish_reason": "COMPLETE",
            "message": {"role": "assistant", "content": content},
            "usage": usage,
        }
    )


def test_parse_response_joins_the_text_and_reads_the_token_counts() -> None:
    answer = response(
        [{"type": "text", "text": "The capital "}, {"type": "text", "text": "is Madrid."}],
        {"tokens": {"input_tokens": 5.0, "output_tokens": 6.0}},
    )

    generations = parse_response(answer)

    assert generations == ["The capital is Madrid."]
    assert (generations.input_tokens, generations.output_tokens) == ([5], [6])


def test_parse_response_falls_back_to_the_billed_units() -> None:
    answer = response([], {"billed_units": {"input_tokens": 4, "output_tokens": 0}})

    generations = parse_response(answer)

    assert generations == [None]
    assert generations.errors == ["empty answer (finish_reason=COMPLETE)"]
    assert (generations.input_tokens, generations.output_tokens) == ([4], [0])


# -- the wire --------------------------------------------------------------------------------------


def test_client_name_is_sent(fake_server: FakeServer) -> None:
    llm = loaded(make(fake_server, client_name="my-app"))

    assert llm.generate([chat(SPAIN)]) == [[MADRID]]
    assert fake_server.requests[0].headers["x-client-name"] == "my-app"


def test_messages_and_kwargs_reach_the_v2_chat_api(fake_server: FakeServer) -> None:
    llm = loaded(make(fake_server))
    conversation = multi_turn()

    outputs = llm.generate(
        [conversation],
        temperature=0.3,
        max_tokens=64,
        k=40,
        p=0.9,
        seed=7,
        stop_sequences=["\nUser:"],
        frequency_penalty=0.1,
        presence_penalty=0.2,
    )

    assert outputs == [[MADRID]]
    (request,) = fake_server.requests
    assert request.path == "/v2/chat"
    assert request.headers["authorization"] == "Bearer test-key"
    assert request.headers["x-client-name"] == "potstill"
    body = dict(request.body)
    assert body.pop("stream") is False
    assert body == {
        "model": MODEL,
        "messages": conversation,  # the system prompt is a `system` message in v2
        "temperature": 0.3,
        "max_tokens": 64,
        "k": 40,
        "p": 0.9,
        "seed": 7,
        "stop_sequences": ["\nUser:"],
        "frequency_penalty": 0.1,
        "presence_penalty": 0.2,
    }
    assert outputs[0].input_tokens == [2 + 1 + 1 + 5]
    assert outputs[0].output_tokens == [6]


def test_unset_kwargs_are_not_sent(fake_server: FakeServer) -> None:
    llm = loaded(make(fake_server))

    assert llm.generate([chat(SPAIN)]) == [[MADRID]]

    assert fake_server.requests[0].body == {
        "model": MODEL,
        "messages": [{"role": "user", "content": SPAIN}],
        "stream": False,
    }


def test_max_tokens_limits_the_answer(fake_server: FakeServer) -> None:
    llm = loaded(make(fake_server))

    assert llm.generate([chat(SPAIN)], max_tokens=3) == [["The capital of"]]


def test_malformed_body_is_retried(fake_server: FakeServer) -> None:
    """cohere raises `ApiError(status_code=200)` for a body it cannot parse: transient."""
    llm = loaded(make(fake_server, max_retries=1))

    outputs = llm.generate([chat("[[malformed]] garbled")])

    assert outputs == [[None]]
    assert len(received(fake_server, PROVIDER, "garbled")) == 2
    assert llm.usage.retries == 1


def test_raw_prompting_is_not_a_generation_kwarg(fake_server: FakeServer) -> None:
    """The v2 Chat API has no `raw_prompting`; it fails when configured, not per row."""
    with pytest.raises(ValueError, match="raw_prompting"):
        make(fake_server, generation_kwargs={"raw_prompting": True})
