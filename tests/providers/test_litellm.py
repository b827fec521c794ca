"""`LiteLLM` through `litellm.acompletion` against the loopback server.

`openai/<name>` with `api_base` routes to the server's OpenAI-compatible endpoint;
`mistral/<name>` routes to its Mistral endpoint, a provider LiteLLM sends no `n` to, which
shows the repeat-until-`n`-choices loop. What every hosted provider shares is in
`test_contract.py`.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from pydantic import SecretStr
from tests.fake_server import FakeServer
from tests.providers.cases import LITELLM_LOGGERS
from tests.providers.contract import (
    MADRID,
    SPAIN,
    bearer,
    chat,
    check_secret_never_shown,
    loaded,
    received,
)

from potstill.errors import PotstillUserError
from potstill.llms import LiteLLM
from potstill.llms.litellm import build_request

MODEL = "openai/gpt-fake"


def make(server: FakeServer, **kwargs: Any) -> LiteLLM:
    kwargs.setdefault("api_base", server.openai_base_url)
    return LiteLLM(model=MODEL, **kwargs)


def test_defaults_mirror_distilabel() -> None:
    llm = LiteLLM(model=MODEL)

    assert (llm.verbose, llm.api_key, llm.api_base, llm.timeout) == (False, None, None, 600.0)
    assert llm.model_name == MODEL
    spec = llm.generation_spec()
    assert spec.native_num_generations
    assert {
        "functions",
        "function_call",
        "temperature",
        "top_p",
        "stop",
        "max_tokens",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "user",
        "metadata",
        "api_base",
        "api_version",
        "model_list",
        "mock_response",
        "force_timeout",
        "custom_llm_provider",
        "api_key",
    } <= set(spec.names())
    # distilabel's generation kwarg; given in `generation_kwargs` it moves to the secret field
    with_key = LiteLLM(model=MODEL, generation_kwargs={"api_key": "sk-in-kwargs"})
    assert with_key.generation_kwargs == {}
    assert with_key.api_key is not None
    assert with_key.api_key.get_secret_value() == "sk-in-kwargs"
    assert "sk-in-kwargs" not in repr(with_key.dump())


def test_build_request_falls_back_to_the_fields_and_turns_litellm_retries_off() -> None:
    from_fields = build_request("http://base/v1", "sk-field", 600.0, user="u", seed=None)
    own = build_request(
        "http://base/v1",
        "sk-field",
        600.0,
        api_base="http://own/v1",
        api_key=SecretStr("sk-own"),
        force_timeout=5.0,
    )

    assert from_fields == {
        "user": "u",
        "api_base": "http://base/v1",
        "api_key": "sk-field",
        "timeout": 600.0,
        "num_retries": 0,
    }
    assert own == {
        "api_base": "http://own/v1",
        "api_key": "sk-own",
        "timeout": 5.0,
        "num_retries": 0,
    }
    assert "api_key" not in build_request(None, None, 600.0), "no key: LiteLLM finds its own"


def test_request_maps_messages_and_kwargs(fake_server: FakeServer) -> None:
    llm = loaded(make(fake_server, api_key="test-key"))
    messages = chat(SPAIN, system="Answer briefly.")

    outputs = llm.generate(
        [messages],
        temperature=0.2,
        top_p=0.9,
        stop=["\n"],
        max_tokens=40,
        presence_penalty=0.1,
        frequency_penalty=0.2,
        logit_bias={"50256": -100.0},
        user="user-1",
        seed=9,
        response_format={"type": "text"},
    )

    assert outputs == [[MADRID]]
    [request] = received(fake_server, "openai")
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer test-key"
    body = request.body
    assert body["model"] == "gpt-fake"
    assert body["messages"] == messages
    assert (body["temperature"], body["top_p"], body["stop"]) == (0.2, 0.9, ["\n"])
    assert (body["max_tokens"], body["presence_penalty"], body["frequency_penalty"]) == (
        40,
        0.1,
        0.2,
    )
    assert (body["logit_bias"], body["seed"]) == ({"50256": -100.0}, 9)
    assert body["response_format"] == {"type": "text"}
    assert "n" not in body


def test_api_base_kwarg_overrides_the_field(fake_server: FakeServer) -> None:
    llm = loaded(make(fake_server, api_key="test-key", api_base="http://127.0.0.1:9/v1"))

    outputs = llm.generate([chat(SPAIN)], api_base=fake_server.openai_base_url)

    assert outputs == [[MADRID]]


def test_num_generations_repeats_until_enough_choices(
    fake_server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    # LiteLLM refuses `n` for Mistral; the call is repeated with unsupported params dropped.
    llm = loaded(
        LiteLLM(
            model="mistral/mistral-small-latest",
            api_base=f"{fake_server.url}/mistral/v1",
            api_key="test-key",
        )
    )

    outputs = llm.generate([chat(SPAIN)], num_generations=3)

    assert outputs == [[MADRID, MADRID, MADRID]]
    requests = received(fake_server, "mistral")
    assert len(requests) == 3
    assert all("n" not in request.body for request in requests)
    assert outputs[0].usage.input_tokens == 15, "usage of every call is summed"
    assert "does not support some parameters" in caplog.text


def test_mock_response_needs_neither_server_nor_key() -> None:
    llm = LiteLLM(model=MODEL, generation_kwargs={"mock_response": "canned"})
    llm.load()

    outputs = llm.generate([chat(SPAIN)], num_generations=2, **llm.generation_kwargs)

    assert outputs == [["canned", "canned"]]


def test_missing_key_names_the_providers_env_var() -> None:
    llm = LiteLLM(model="groq/llama-3.1-8b-instant")

    with pytest.raises(PotstillUserError, match="GROQ_API_KEY"):
        llm.load()


def test_providers_env_var_is_used(
    fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    llm = loaded(make(fake_server))

    assert llm.generate([chat(SPAIN)]) == [[MADRID]]
    [request] = received(fake_server, "openai")
    assert request.headers["authorization"] == "Bearer test-key"


def test_load_only_silences_litellms_prints(fake_server: FakeServer) -> None:
    import litellm

    levels = {name: logging.getLogger(name).level for name in LITELLM_LOGGERS}
    litellm.suppress_debug_info = False

    loaded(make(fake_server, api_key="test-key"))

    assert litellm.suppress_debug_info is True
    assert {name: logging.getLogger(name).level for name in LITELLM_LOGGERS} == levels
    assert litellm.drop_params is not True


def test_secret_never_shown_with_verbose_logging(
    fake_server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    check_secret_never_shown(
        lambda key: make(fake_server, api_key=key, verbose=True),
        fake_server,
        caplog,
        bearer,
        "AuthenticationError",  # LiteLLM's message has no status code
    )
