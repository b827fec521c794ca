"""The OpenAI-compatible providers (Anyscale, Together, Azure OpenAI, Groq, LiteLLM, Mistral)
through their real SDKs against the loopback server: the tests they share.

Anyscale and Together are `OpenAILLM` with another base URL and key, so they share every
test; the others share the contract checks here and keep their own tests in their files.
"""

from __future__ import annotations

import pytest
from tests.fake_server import FakeServer
from tests.providers.compatible import ANYSCALE, AZURE, GROQ, LITELLM, MISTRAL, TOGETHER, Compatible
from tests.providers.contract import (
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
    samples,
)

# `OpenAILLM` under another name: they share every test.
PLAIN = [ANYSCALE, TOGETHER]
# The classes whose `base_url` and key both come from env vars.
BASE_URL_FROM_ENV = [ANYSCALE, TOGETHER, GROQ]
FAMILY = [ANYSCALE, TOGETHER, AZURE, GROQ, LITELLM, MISTRAL]


def ids(specs: list[Compatible]) -> list[str]:
    return [spec.id for spec in specs]


plain = pytest.mark.parametrize("spec", PLAIN, ids=ids(PLAIN))
family = pytest.mark.parametrize("spec", FAMILY, ids=ids(FAMILY))


@plain
def test_defaults_mirror_distilabel(spec: Compatible) -> None:
    llm = spec.cls(model=spec.model)

    assert llm.base_url == spec.default_base_url
    assert llm.api_key is None
    assert llm.model_name == spec.model
    assert llm.generation_spec().native_num_generations


@pytest.mark.parametrize("spec", BASE_URL_FROM_ENV, ids=ids(BASE_URL_FROM_ENV))
def test_env_vars_set_base_url_and_key(
    spec: Compatible, fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = spec.fields(fake_server)["base_url"]
    monkeypatch.setenv(spec.base_url_env, url)
    monkeypatch.setenv(spec.key_env, "test-key")

    llm = spec.cls(model=spec.model)

    assert llm.base_url == url
    assert llm.api_key is not None and llm.api_key.get_secret_value() == "test-key"


@plain
def test_request_maps_messages_and_kwargs(spec: Compatible, fake_server: FakeServer) -> None:
    llm = loaded(spec.make(fake_server, api_key="test-key"))
    messages = chat(SPAIN, system="Answer briefly.")

    outputs = llm.generate(
        [messages], max_new_tokens=64, temperature=0.5, top_p=0.9, stop=["\n"], seed=7
    )

    assert outputs == [[MADRID]]
    [request] = received(fake_server, "openai")
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer test-key"
    body = request.body
    assert body["model"] == spec.model
    assert body["messages"] == messages
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (64, 0.5, 0.9)
    assert (body["stop"], body["seed"], body["n"]) == (["\n"], 7, 1)
    assert "max_new_tokens" not in body


@plain
def test_num_generations_is_native_n_with_usage(spec: Compatible, fake_server: FakeServer) -> None:
    llm = loaded(spec.make(fake_server, api_key="test-key"))

    outputs = llm.generate([chat(SPAIN), chat(FRANCE)], num_generations=3)

    assert [len(output) for output in outputs] == [3, 3]
    assert outputs[0][0] == MADRID and outputs[1][0] == PARIS
    assert len(set(outputs[0])) == 3, "the n choices differ"
    assert sorted(request.body["n"] for request in received(fake_server, "openai")) == [3, 3]
    # One request per input: its usage sits on the first generation.
    assert outputs[0].input_tokens == [5, None, None]
    assert outputs[0].usage.output_tokens > 0
    assert llm.usage.requests == 2
    assert llm.usage.input_tokens == 10


@plain
def test_text_generation_pipeline(spec: Compatible, fake_server: FakeServer) -> None:
    rows = run_text_generation(
        spec.make(fake_server, api_key="test-key"),
        [SPAIN, FRANCE],
        params={"generation_kwargs": {"temperature": 0.2, "max_new_tokens": 32}},
        num_generations=2,
    )

    assert [row["generation"] for row in rows] == samples(MADRID, 2) + samples(PARIS, 2)
    assert {row["model_name"] for row in rows} == {spec.model}
    bodies = [request.body for request in received(fake_server, "openai")]
    assert len(bodies) == 2
    assert {(body["temperature"], body["max_tokens"], body["n"]) for body in bodies} == {
        (0.2, 32, 2)
    }
    statistics = rows[0]["potstill_metadata"]["statistics_text_generation_0"]
    assert statistics["input_tokens"] == 5


@family
def test_missing_api_key_fails_at_load(spec: Compatible, fake_server: FakeServer) -> None:
    check_missing_key(lambda **kw: spec.make(fake_server, **kw), spec.key_env)


@family
def test_failures_are_isolated(spec: Compatible, fake_server: FakeServer) -> None:
    # For LiteLLM this also shows its own retries are off: one request for the 500.
    check_failures_are_isolated(
        spec.make(fake_server, api_key="test-key"), fake_server, spec.provider
    )


@family
def test_retry_succeeds(spec: Compatible, fake_server: FakeServer) -> None:
    check_retry_succeeds(spec.make(fake_server, api_key="test-key"), fake_server, spec.provider)


@family
def test_secret_never_shown(
    spec: Compatible, fake_server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    check_secret_never_shown(
        lambda key: spec.make(fake_server, api_key=key),
        fake_server,
        caplog,
        spec.show_key,
        spec.refused_error,
    )
