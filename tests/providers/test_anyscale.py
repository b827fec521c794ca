"""`AnyscaleLLM` through the `openai` SDK against the loopback server's chat completions."""

from __future__ import annotations

from typing import Any

import pytest
from tests.fake_server import FakeServer
from tests.providers.helpers import (
    FRANCE,
    MADRID,
    PARIS,
    SPAIN,
    chat,
    check_failures_are_isolated,
    check_missing_key,
    check_retry_succeeds,
    check_secret_never_shown,
    loaded,
    received,
    run_text_generation,
)

from potstill.llms import AnyscaleLLM

MODEL = "meta-llama/Meta-Llama-3-8B-Instruct"


@pytest.fixture
def anyscale_env(fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    monkeypatch.setenv("ANYSCALE_BASE_URL", fake_server.openai_base_url)
    monkeypatch.setenv("ANYSCALE_API_KEY", "test-key")
    return fake_server


def make(**kwargs: Any) -> AnyscaleLLM:
    return AnyscaleLLM(model=MODEL, **kwargs)


def test_defaults_mirror_distilabel() -> None:
    llm = AnyscaleLLM(model=MODEL)

    assert llm.base_url == "https://api.endpoints.anyscale.com/v1"
    assert llm.api_key is None
    assert llm.model_name == MODEL
    assert llm.generation_spec().native_num_generations


def test_env_vars_set_base_url_and_key(anyscale_env: FakeServer) -> None:
    llm = make()

    assert llm.base_url == anyscale_env.openai_base_url
    assert llm.api_key is not None and llm.api_key.get_secret_value() == "test-key"


def test_request_maps_messages_and_kwargs(anyscale_env: FakeServer) -> None:
    llm = loaded(make())
    messages = chat(SPAIN, system="Answer briefly.")

    outputs = llm.generate(
        [messages], max_new_tokens=64, temperature=0.5, top_p=0.9, stop=["\n"], seed=7
    )

    assert outputs == [[MADRID]]
    [request] = received(anyscale_env, "openai")
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer test-key"
    body = request.body
    assert body["model"] == MODEL
    assert body["messages"] == messages
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (64, 0.5, 0.9)
    assert (body["stop"], body["seed"], body["n"]) == (["\n"], 7, 1)
    assert "max_new_tokens" not in body


def test_num_generations_is_native_n_with_usage(anyscale_env: FakeServer) -> None:
    llm = loaded(make())

    outputs = llm.generate([chat(SPAIN), chat(FRANCE)], num_generations=3)

    assert [len(output) for output in outputs] == [3, 3]
    assert outputs[0][0] == MADRID and outputs[1][0] == PARIS
    assert len(set(outputs[0])) == 3, "the n choices differ"
    assert sorted(request.body["n"] for request in received(anyscale_env, "openai")) == [3, 3]
    # One request per input: its usage sits on the first generation.
    assert outputs[0].input_tokens == [5, None, None]
    assert outputs[0].usage.output_tokens > 0
    assert llm.usage.requests == 2
    assert llm.usage.input_tokens == 10


def test_missing_api_key_fails_at_load() -> None:
    check_missing_key(make, "ANYSCALE_API_KEY")


def test_failures_are_isolated(anyscale_env: FakeServer) -> None:
    check_failures_are_isolated(loaded(make()), anyscale_env, "openai")


def test_retry_succeeds(anyscale_env: FakeServer) -> None:
    check_retry_succeeds(loaded(make()), anyscale_env, "openai")


def test_secret_never_shown(fake_server: FakeServer, caplog: pytest.LogCaptureFixture) -> None:
    check_secret_never_shown(
        lambda **kw: make(base_url=fake_server.openai_base_url, **kw), fake_server, caplog
    )


def test_text_generation_pipeline(anyscale_env: FakeServer) -> None:
    rows = run_text_generation(
        make(),
        [SPAIN, FRANCE],
        params={"generation_kwargs": {"temperature": 0.2, "max_new_tokens": 32}},
        num_generations=2,
    )

    assert [row["generation"] for row in rows] == [
        MADRID,
        f"{MADRID} (sample 1)",
        PARIS,
        f"{PARIS} (sample 1)",
    ]
    assert {row["model_name"] for row in rows} == {MODEL}
    bodies = [request.body for request in received(anyscale_env, "openai")]
    assert len(bodies) == 2
    assert {(body["temperature"], body["max_tokens"], body["n"]) for body in bodies} == {
        (0.2, 32, 2)
    }
    statistics = rows[0]["potstill_metadata"]["statistics_text_generation_0"]
    assert statistics["input_tokens"] == 5
