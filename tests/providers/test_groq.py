"""`GroqLLM` through the official `groq` SDK against the loopback server's Groq route.

The tests it shares with the other OpenAI-compatible providers are in
`test_openai_compatible.py`.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.fake_server import FakeServer
from tests.providers.compatible import GROQ
from tests.providers.contract import (
    FRANCE,
    MADRID,
    PARIS,
    SPAIN,
    chat,
    loaded,
    multi_turn,
    received,
    run_text_generation,
)

from potstill.llms import GroqLLM

MODEL = GROQ.model


@pytest.fixture
def groq_env(fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    monkeypatch.setenv("GROQ_BASE_URL", fake_server.url)
    monkeypatch.setenv("GROQ_API_KEY", "test-key")
    return fake_server


def make(**kwargs: Any) -> GroqLLM:
    return GroqLLM(model=MODEL, **kwargs)


def test_defaults_mirror_distilabel() -> None:
    llm = make()

    assert llm.base_url == "https://api.groq.com"
    assert llm.api_key is None
    assert llm.max_retries == 2, "distilabel's Groq default, not AsyncLLM's 6"
    assert llm.timeout == 120
    assert llm.model_name == MODEL
    assert not llm.generation_spec().native_num_generations, "Groq only accepts n=1"
    assert llm.generation_spec().names() == {
        "seed": True,
        "max_new_tokens": True,
        "temperature": True,
        "top_p": True,
        "stop": True,
    }


def test_request_maps_messages_and_kwargs(groq_env: FakeServer) -> None:
    llm = loaded(make())
    messages = multi_turn()
    original = [dict(message) for message in messages]

    outputs = llm.generate(
        [messages], seed=42, max_new_tokens=20, temperature=0.1, top_p=0.5, stop="\n\n"
    )

    assert outputs == [[MADRID]]
    assert messages == original, "the input is not mutated"
    [request] = received(groq_env, "groq")
    assert request.path == "/openai/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer test-key"
    body = request.body
    assert body["model"] == MODEL
    assert body["messages"] == messages
    assert body["seed"] == 42
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (20, 0.1, 0.5)
    assert body["stop"] == "\n\n"
    assert "n" not in body
    assert "max_new_tokens" not in body


def test_defaults_sent_and_unset_kwargs_left_out(groq_env: FakeServer) -> None:
    llm = loaded(make())

    llm.generate([chat(SPAIN)])

    [request] = received(groq_env, "groq")
    assert (request.body["max_tokens"], request.body["temperature"]) == (128, 1.0)
    assert "seed" not in request.body and "stop" not in request.body


def test_num_generations_sends_parallel_requests(groq_env: FakeServer) -> None:
    llm = loaded(make(max_concurrent_requests=8))

    outputs = llm.generate([chat(SPAIN), chat(FRANCE)], num_generations=3)

    assert outputs == [[MADRID] * 3, [PARIS] * 3]
    requests = received(groq_env, "groq")
    assert len(requests) == 6
    assert all("n" not in request.body for request in requests)
    # Each request reports its own usage.
    assert outputs[0].input_tokens == [5, 5, 5]
    assert outputs[1].output_tokens == [6, 6, 6]
    assert llm.usage.requests == 6
    assert llm.usage.input_tokens == 30


def test_text_generation_pipeline(groq_env: FakeServer) -> None:
    rows = run_text_generation(
        make(),
        [SPAIN, FRANCE],
        params={"generation_kwargs": {"seed": 3, "max_new_tokens": 16}, "max_retries": 0},
        num_generations=2,
    )

    assert [row["generation"] for row in rows] == [MADRID, MADRID, PARIS, PARIS]
    requests = received(groq_env, "groq")
    assert len(requests) == 4
    assert {(request.body["seed"], request.body["max_tokens"]) for request in requests} == {(3, 16)}
    statistics = [row["potstill_metadata"]["statistics_text_generation_0"] for row in rows]
    assert [item["input_tokens"] for item in statistics] == [5, 5, 5, 5]
