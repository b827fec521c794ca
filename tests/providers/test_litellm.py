"""`LiteLLM` through `litellm.acompletion` against the loopback server.

`openai/<name>` with `api_base` routes to the server's OpenAI-compatible endpoint;
`mistral/<name>` routes to its Mistral endpoint, a provider LiteLLM sends no `n` to, which
shows the repeat-until-`n`-choices loop. The tests it shares with the other
OpenAI-compatible providers are in `test_openai_compatible.py`.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.fake_server import FakeServer
from tests.providers.compatible import LITELLM, LITELLM_LOGGERS
from tests.providers.contract import (
    FRANCE,
    MADRID,
    PARIS,
    SPAIN,
    chat,
    check_secret_never_shown,
    loaded,
    received,
    run_text_generation,
    samples,
)

from potstill.errors import PotstillUserError
from potstill.llms import LiteLLM

MODEL = LITELLM.model
ROOT = Path(__file__).resolve().parents[2]


def make(server: FakeServer, **kwargs: Any) -> LiteLLM:
    kwargs.setdefault("api_base", server.openai_base_url)
    return LiteLLM(model=MODEL, **kwargs)


def test_importing_the_module_does_not_import_litellm() -> None:
    code = "import sys, potstill.llms.litellm; print('litellm' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT / 'src'}:{ROOT}", "PATH": "/usr/bin:/bin"},
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


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


def test_num_generations_is_native_n_with_usage(fake_server: FakeServer) -> None:
    llm = loaded(make(fake_server, api_key="test-key"))

    outputs = llm.generate([chat(SPAIN), chat(FRANCE)], num_generations=3)

    assert outputs[0] == samples(MADRID, 3)
    assert outputs[1][0] == PARIS and len(outputs[1]) == 3
    assert sorted(request.body["n"] for request in received(fake_server, "openai")) == [3, 3]
    assert outputs[0].input_tokens == [5, None, None]
    assert outputs[0].usage.output_tokens == 6 + 8 + 8
    assert llm.usage.requests == 2


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
        LITELLM.show_key,
        LITELLM.refused_error,
    )


def test_text_generation_pipeline(fake_server: FakeServer) -> None:
    rows = run_text_generation(
        make(fake_server, api_key="test-key"),
        [SPAIN, FRANCE],
        params={"generation_kwargs": {"temperature": 0.5, "max_tokens": 64}},
        num_generations=2,
    )

    assert [row["generation"] for row in rows] == samples(MADRID, 2) + samples(PARIS, 2)
    assert {row["model_name"] for row in rows} == {MODEL}
    requests = received(fake_server, "openai")
    assert len(requests) == 2
    assert {(r.body["temperature"], r.body["max_tokens"], r.body["n"]) for r in requests} == {
        (0.5, 64, 2)
    }
