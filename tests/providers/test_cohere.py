"""CohereLLM through the real `cohere` SDK (v2 client) against the loopback Chat API."""

from __future__ import annotations

import pytest
from tests.fake_server import FakeServer
from tests.providers.contract import (
    MADRID,
    SPAIN,
    bearer,
    chat,
    check_empty_answer,
    check_failures_are_isolated,
    check_missing_key,
    check_num_generations,
    check_pipeline,
    check_retry_succeeds,
    check_secret_never_shown,
    loaded,
    multi_turn,
    received,
)

from potstill.llms import CohereLLM

PROVIDER = "cohere"
MODEL = "command-r-plus"

# The cohere SDK itself uses a pydantic v1 attribute when it parses responses.
pytestmark = pytest.mark.filterwarnings("ignore:The `__fields__` attribute is deprecated")


def make(server: FakeServer, **kwargs) -> CohereLLM:
    kwargs.setdefault("api_key", "test-key")
    kwargs.setdefault("model", MODEL)
    return CohereLLM(base_url=server.url, **kwargs)


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


def test_empty_answer_is_none_with_a_reason(fake_server: FakeServer) -> None:
    check_empty_answer(make(fake_server), "empty answer")


def test_num_generations_sends_parallel_requests(fake_server: FakeServer) -> None:
    check_num_generations(make(fake_server), fake_server, PROVIDER)


def test_one_failed_request_only_fails_its_generation(fake_server: FakeServer) -> None:
    check_failures_are_isolated(make(fake_server), fake_server, PROVIDER)


def test_malformed_body_is_retried(fake_server: FakeServer) -> None:
    """cohere raises `ApiError(status_code=200)` for a body it cannot parse: transient."""
    llm = loaded(make(fake_server, max_retries=1))

    outputs = llm.generate([chat("[[malformed]] garbled")])

    assert outputs == [[None]]
    assert len(received(fake_server, PROVIDER, "garbled")) == 2
    assert llm.usage.retries == 1


def test_transient_error_is_retried(fake_server: FakeServer) -> None:
    check_retry_succeeds(make(fake_server), fake_server, PROVIDER)


def test_missing_api_key_fails_at_load_naming_the_env_var() -> None:
    check_missing_key(lambda **kw: CohereLLM(model=MODEL, **kw), "COHERE_API_KEY")


def test_env_vars_set_base_url_and_key(
    fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COHERE_BASE_URL", fake_server.url)
    monkeypatch.setenv("COHERE_API_KEY", "test-key")
    llm = loaded(CohereLLM(model=MODEL))

    assert llm.generate([chat(SPAIN)]) == [[MADRID]]


def test_key_never_shown(fake_server: FakeServer, caplog: pytest.LogCaptureFixture) -> None:
    check_secret_never_shown(
        lambda key: make(fake_server, api_key=key),
        fake_server,
        caplog,
        bearer,
    )


def test_raw_prompting_is_not_a_generation_kwarg(fake_server: FakeServer) -> None:
    """The v2 Chat API has no `raw_prompting`; it fails when configured, not per row."""
    with pytest.raises(ValueError, match="raw_prompting"):
        make(fake_server, generation_kwargs={"raw_prompting": True})


def test_runs_in_text_generation_pipeline(fake_server: FakeServer) -> None:
    llm = make(fake_server, client_name="my-app")

    check_pipeline(llm, {"generation_kwargs": {"temperature": 0.2, "seed": 3}})

    requests = received(fake_server, PROVIDER)
    assert len(requests) == 4
    for request in requests:
        assert request.headers["x-client-name"] == "my-app"
        assert request.body["temperature"] == 0.2
        assert request.body["seed"] == 3
        assert request.body["messages"][0] == {"role": "system", "content": "Be brief."}
