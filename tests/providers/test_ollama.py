"""OllamaLLM through the real `ollama` client against the loopback `/api/chat`."""

from __future__ import annotations

import json

import pytest
from tests.fake_server import FakeServer
from tests.providers.contract import (
    MADRID,
    SPAIN,
    bearer,
    chat,
    check_empty_answer,
    check_failures_are_isolated,
    check_num_generations,
    check_pipeline,
    check_retry_succeeds,
    check_secret_never_shown,
    loaded,
    multi_turn,
    received,
)

from potstill.llms import OllamaLLM

PROVIDER = "ollama"
MODEL = "llama3.2"


@pytest.fixture
def server(fake_server: FakeServer) -> FakeServer:
    """The loopback server without a key requirement, like a local Ollama."""
    fake_server.configure(require_api_key=None)
    return fake_server


def make(server: FakeServer, **kwargs) -> OllamaLLM:
    kwargs.setdefault("model", MODEL)
    return OllamaLLM(host=server.url, **kwargs)


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


def test_empty_answer_is_none_with_a_reason(server: FakeServer) -> None:
    check_empty_answer(make(server), "empty answer")


def test_num_generations_sends_parallel_requests(server: FakeServer) -> None:
    check_num_generations(make(server), server, PROVIDER)


def test_one_failed_request_only_fails_its_generation(server: FakeServer) -> None:
    check_failures_are_isolated(make(server), server, PROVIDER)


def test_transient_error_is_retried(server: FakeServer) -> None:
    check_retry_succeeds(make(server), server, PROVIDER)


def test_host_from_the_sdk_env_var(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", server.url)
    llm = loaded(OllamaLLM(model=MODEL))

    assert llm.host is None
    assert llm.generate([chat(SPAIN)]) == [[MADRID]]


def test_no_key_needed_but_a_key_is_sent_as_bearer_and_never_shown(
    fake_server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    loaded(make(fake_server))  # no key: loading works (a local Ollama has no auth)

    check_secret_never_shown(
        lambda key: make(fake_server, api_key=key),
        fake_server,
        caplog,
        bearer,
    )


def test_api_key_from_env(fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_API_KEY", "test-key")
    llm = loaded(make(fake_server))

    assert llm.generate([chat(SPAIN)]) == [[MADRID]]
    assert fake_server.requests[0].headers["authorization"] == "Bearer test-key"


def test_runs_in_text_generation_pipeline(server: FakeServer) -> None:
    llm = make(server)

    check_pipeline(llm, {"generation_kwargs": {"options": {"temperature": 0.2}}})

    requests = received(server, PROVIDER)
    assert len(requests) == 4
    for request in requests:
        assert request.body["options"] == {"temperature": 0.2}
        assert request.body["messages"][0] == {"role": "system", "content": "Be brief."}
