"""OllamaLLM: its pure request building and answer parsing, and its wire format through the
real `ollama` client against the loopback `/api/chat`. What every hosted provider shares
is in `test_contract.py`."""

from __future__ import annotations

import json

import pytest
from ollama import ChatResponse
from tests.fake_server import FakeServer
from tests.providers.contract import (
    MADRID,
    SPAIN,
    chat,
    loaded,
    multi_turn,
)

from potstill.llms import OllamaLLM
from potstill.llms.ollama import build_request, parse_response

MODEL = "llama3.2"


@pytest.fixture
def server(fake_server: FakeServer) -> FakeServer:
    """The loopback server without a key requirement, like a local Ollama."""
    fake_server.configure(require_api_key=None)
    return fake_server


def make(server: FakeServer, **kwargs) -> OllamaLLM:
    kwargs.setdefault("model", MODEL)
    return OllamaLLM(host=server.url, **kwargs)


# -- request building and answer parsing (no server) ----------------------------------------------


def test_build_request_is_one_unstreamed_chat_call() -> None:
    conversation = [{"role": "user", "content": SPAIN, "images": None}]

    request = build_request(
        MODEL, conversation, format="json", options={"seed": 7}, keep_alive=None
    )

    assert request == {
        "model": MODEL,
        "messages": [{"role": "user", "content": SPAIN}],
        "stream": False,
        "format": "json",
        "options": {"seed": 7},
        "keep_alive": None,
    }


def test_parse_response_reads_the_text_and_the_eval_counts() -> None:
    answer = ChatResponse.model_validate(
        {
            "model": MODEL,
            "message": {"role": "assistant", "content": MADRID},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 5,
            "eval_count": 6,
        }
    )

    generations = parse_response(answer)

    assert generations == [MADRID]
    assert (generations.input_tokens, generations.output_tokens) == ([5], [6])


def test_parse_response_of_an_empty_answer_keeps_the_done_reason() -> None:
    answer = ChatResponse.model_validate(
        {"model": MODEL, "message": {"role": "assistant", "content": ""}, "done_reason": "load"}
    )

    generations = parse_response(answer)

    assert generations == [None]
    assert generations.errors == ["empty answer (done_reason=load)"]


# -- the wire --------------------------------------------------------------------------------------


def test_messages_format_options_and_keep_alive_reach_the_api(server: FakeServer) -> None:
    llm = loaded(make(server))
    conversation = multi_turn()
    options = {"temperature": 0.3, "top_p": 0.9, "seed": 7, "num_predict": 64, "min_p": 0.05}

    outputs = llm.generate([conversation], format="json", options=options, keep_alive="5m")

    assert outputs == [[json.dumps({"answer": MADRID})]]
    (request,) = server.requests
    assert request.path == "/api/chat"
    assert "authorization" not in request.headers, "a local server gets no key"
    body = request.body
    assert body["model"] == MODEL
    assert body["messages"] == conversation
    assert body["stream"] is False
    assert body["format"] == "json"
    assert body["options"] == options, "known and extra option keys are both sent"
    assert body["keep_alive"] == "5m"
    assert outputs[0].input_tokens == [2 + 1 + 1 + 5]
    assert outputs[0].output_tokens == [len(outputs[0][0].split())]


def test_options_limit_and_stop_the_answer(server: FakeServer) -> None:
    llm = loaded(make(server))

    outputs = llm.generate([chat(SPAIN), chat(SPAIN)], options={"num_predict": 3, "stop": ["of"]})

    assert outputs == [["The capital "], ["The capital "]]


def test_json_schema_format(server: FakeServer) -> None:
    llm = loaded(make(server))
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}

    (output,) = llm.generate([chat(SPAIN)], format=schema)

    assert server.requests[0].body["format"] == schema
    assert set(json.loads(output[0])) == {"city"}


def test_options_of_the_wrong_type_fail_before_any_request(server: FakeServer) -> None:
    with pytest.raises(ValueError, match="num_predict"):
        make(server, generation_kwargs={"options": {"num_predict": "many"}})


def test_host_from_the_sdk_env_var(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", server.url)
    llm = loaded(OllamaLLM(model=MODEL))

    assert llm.host is None
    assert llm.generate([chat(SPAIN)]) == [[MADRID]]


def test_api_key_from_env(fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_API_KEY", "test-key")
    llm = loaded(make(fake_server))

    assert llm.generate([chat(SPAIN)]) == [[MADRID]]
    assert fake_server.requests[0].headers["authorization"] == "Bearer test-key"
