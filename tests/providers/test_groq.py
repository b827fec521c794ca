"""`GroqLLM` through the official `groq` SDK against the loopback server's Groq route.

What every hosted provider shares is in `test_contract.py`.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.fake_server import FakeServer
from tests.providers.contract import (
    MADRID,
    SPAIN,
    chat,
    loaded,
    multi_turn,
    received,
)

from potstill.llms import GroqLLM
from potstill.llms.groq import build_request

MODEL = "llama-3.1-8b-instant"


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


def test_build_request_asks_for_one_choice_with_the_kwargs_that_are_set() -> None:
    body = build_request(MODEL, chat(SPAIN), seed=None, max_new_tokens=20, top_p=0.5, stop="\n")

    assert body == {
        "messages": chat(SPAIN),
        "model": MODEL,
        "max_tokens": 20,
        "top_p": 0.5,
        "stop": "\n",
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
