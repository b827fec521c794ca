"""AnthropicLLM through the real `anthropic` SDK against the loopback Messages API."""

from __future__ import annotations

import pytest
from tests.fake_server import FakeServer
from tests.providers.contract import (
    MADRID,
    SPAIN,
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

from potstill.llms import AnthropicLLM

PROVIDER = "anthropic"
MODEL = "claude-potstill-test"


def make(server: FakeServer, **kwargs) -> AnthropicLLM:
    kwargs.setdefault("api_key", "test-key")
    kwargs.setdefault("model", MODEL)
    return AnthropicLLM(base_url=server.url, **kwargs)


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


def test_empty_content_is_none_with_a_reason(fake_server: FakeServer) -> None:
    check_empty_answer(make(fake_server), "no text content")


def test_num_generations_sends_parallel_requests(fake_server: FakeServer) -> None:
    check_num_generations(make(fake_server), fake_server, PROVIDER)


def test_one_failed_request_only_fails_its_generation(fake_server: FakeServer) -> None:
    check_failures_are_isolated(make(fake_server), fake_server, PROVIDER)


def test_transient_error_is_retried(fake_server: FakeServer) -> None:
    check_retry_succeeds(make(fake_server), fake_server, PROVIDER)


def test_missing_api_key_fails_at_load_naming_the_env_var() -> None:
    check_missing_key(lambda **kw: AnthropicLLM(model=MODEL, **kw), "ANTHROPIC_API_KEY")


def test_env_vars_set_base_url_and_key(
    fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_server.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    llm = loaded(AnthropicLLM(model=MODEL))

    assert llm.base_url == fake_server.url
    assert llm.generate([chat(SPAIN)]) == [[MADRID]]


def test_key_never_shown(fake_server: FakeServer, caplog: pytest.LogCaptureFixture) -> None:
    check_secret_never_shown(
        lambda key: make(fake_server, api_key=key),
        fake_server,
        caplog,
        lambda request: request.headers.get("x-api-key"),
    )


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


def test_runs_in_text_generation_pipeline(fake_server: FakeServer) -> None:
    llm = make(fake_server)

    check_pipeline(llm, {"generation_kwargs": {"temperature": 0.2, "max_tokens": 50}})

    bodies = received(fake_server, PROVIDER)
    assert len(bodies) == 4
    for request in bodies:
        assert request.body["system"] == "Be brief."
        assert request.body["temperature"] == 0.2
        assert request.body["max_tokens"] == 50
        assert [m["role"] for m in request.body["messages"]] == ["user"]
