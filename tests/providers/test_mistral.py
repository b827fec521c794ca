"""`MistralLLM` through the official `mistralai` SDK against the loopback server.

Mistral's wire path, `/v1/chat/completions`, is also OpenAI's; the fake server serves
Mistral's format under the `/mistral` prefix, which the SDK reaches through its
`server_url` (`MistralLLM.endpoint`). What every hosted provider shares is in
`test_contract.py`.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from tests.fake_server import FakeServer
from tests.providers.contract import (
    MADRID,
    SPAIN,
    chat,
    loaded,
    received,
)

from potstill.llms import MistralLLM
from potstill.llms.mistral import build_request

MODEL = "mistral-small-latest"


def endpoint(server: FakeServer) -> str:
    return f"{server.url}/mistral"


@pytest.fixture
def mistral_env(fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    monkeypatch.setenv("MISTRAL_API_KEY", "test-key")
    return fake_server


def make(server: FakeServer, **kwargs: Any) -> MistralLLM:
    return MistralLLM(model=MODEL, endpoint=endpoint(server), **kwargs)


def test_defaults_mirror_distilabel() -> None:
    llm = MistralLLM(model=MODEL)

    assert llm.endpoint == "https://api.mistral.ai"
    assert llm.api_key is None
    assert (llm.max_retries, llm.timeout, llm.max_concurrent_requests) == (6, 120, 64)
    assert llm.model_name == MODEL
    assert llm.generation_spec().native_num_generations


def test_env_var_sets_key(mistral_env: FakeServer) -> None:
    llm = make(mistral_env)

    assert llm.api_key is not None and llm.api_key.get_secret_value() == "test-key"


def test_sdk_retries_are_off(mistral_env: FakeServer) -> None:
    llm = loaded(make(mistral_env))

    configuration = llm.client.sdk_configuration
    assert configuration.retry_config is None
    assert configuration.timeout_ms == 120_000


def test_build_request_sends_n_and_only_the_kwargs_that_are_set() -> None:
    one = build_request(MODEL, chat(SPAIN), 1, max_new_tokens=30, temperature=None, stop=["END"])
    three = build_request(MODEL, chat(SPAIN), 3, random_seed=11)

    assert one == {"model": MODEL, "messages": chat(SPAIN), "max_tokens": 30, "stop": ["END"]}
    assert three == {"model": MODEL, "messages": chat(SPAIN), "n": 3, "random_seed": 11}


def test_request_maps_messages_and_kwargs(mistral_env: FakeServer) -> None:
    llm = loaded(make(mistral_env))
    messages = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": SPAIN},
    ]

    outputs = llm.generate(
        [messages],
        max_new_tokens=30,
        temperature=0.7,
        top_p=0.95,
        random_seed=11,
        stop=["END"],
        presence_penalty=0.5,
        frequency_penalty=0.25,
        response_format={"type": "text"},
    )

    assert outputs == [[MADRID]]
    [request] = received(mistral_env, "mistral")
    assert request.path == "/mistral/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer test-key"
    body = request.body
    assert body["model"] == MODEL
    assert [(m["role"], m["content"]) for m in body["messages"]] == [
        (m["role"], m["content"]) for m in messages
    ]
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (30, 0.7, 0.95)
    assert (body["random_seed"], body["stop"]) == (11, ["END"])
    assert (body["presence_penalty"], body["frequency_penalty"]) == (0.5, 0.25)
    assert body["response_format"] == {"type": "text"}
    assert "n" not in body


def test_unset_kwargs_are_not_sent(mistral_env: FakeServer) -> None:
    llm = loaded(make(mistral_env))

    llm.generate([chat(SPAIN)])

    [request] = received(mistral_env, "mistral")
    assert set(request.body) == {"model", "messages", "stream"}
    assert request.body["stream"] is False


def test_max_new_tokens_truncates(mistral_env: FakeServer) -> None:
    llm = loaded(make(mistral_env))

    outputs = llm.generate([chat(SPAIN)], max_new_tokens=3)

    assert outputs == [["The capital of"]]
    assert outputs[0].output_tokens == [3]


def test_fake_server_rejects_fields_mistral_does_not_know(mistral_env: FakeServer) -> None:
    body = {"model": MODEL, "messages": chat(SPAIN), "seed": 1}
    request = urllib.request.Request(
        f"{endpoint(mistral_env)}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": "Bearer test-key"},
    )

    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)

    assert info.value.code == 422
    detail = json.loads(info.value.read())["message"]["detail"][0]
    assert (detail["type"], detail["loc"]) == ("extra_forbidden", ["body", "seed"])


def test_unload_closes_the_client(mistral_env: FakeServer) -> None:
    llm = loaded(make(mistral_env))

    async def use_and_unload() -> Any:
        await llm.agenerate(chat(SPAIN))
        client = llm.client
        llm.unload()
        await asyncio.sleep(0)  # the close is scheduled on this loop
        return client

    client = asyncio.run(use_and_unload())

    assert client.sdk_configuration.async_client is None
