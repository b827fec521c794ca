"""`AzureOpenAILLM` through `openai.AsyncAzureOpenAI` against the loopback server.

The server serves Azure's deployment routes
(`/openai/deployments/{deployment}/chat/completions?api-version=...`, key in `api-key`),
so these tests show that the SDK's `client.post("/chat/completions", ...)` used by
`OpenAILLM` reaches the deployment URL. What every hosted provider shares is in
`test_contract.py`.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.fake_server import FakeServer
from tests.providers.cases import AZURE_API_VERSION
from tests.providers.contract import (
    MADRID,
    SPAIN,
    chat,
    loaded,
    received,
)

from potstill.errors import PotstillUserError
from potstill.llms import AzureOpenAILLM

DEPLOYMENT = "my-gpt-4o-deployment"
API_VERSION = AZURE_API_VERSION


@pytest.fixture
def azure_env(fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", fake_server.url)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_API_VERSION", API_VERSION)
    return fake_server


def make(**kwargs: Any) -> AzureOpenAILLM:
    return AzureOpenAILLM(model=DEPLOYMENT, **kwargs)


def test_defaults_mirror_distilabel() -> None:
    llm = make()

    assert llm.base_url is None, "no fallback endpoint, as in distilabel"
    assert llm.api_key is None
    assert llm.api_version is None
    assert llm.model_name == DEPLOYMENT
    assert llm.generation_spec().native_num_generations


def test_env_vars_set_endpoint_key_and_version(azure_env: FakeServer) -> None:
    llm = make()

    assert llm.base_url == azure_env.url
    assert llm.api_version == API_VERSION
    assert llm.api_key is not None and llm.api_key.get_secret_value() == "test-key"


def test_request_goes_to_the_deployment_url(azure_env: FakeServer) -> None:
    llm = loaded(make())
    messages = chat(SPAIN, system="Answer briefly.")

    outputs = llm.generate(
        [messages], max_new_tokens=50, temperature=0.3, top_p=0.8, frequency_penalty=0.1
    )

    assert outputs == [[MADRID]]
    [request] = received(azure_env, "azure")
    assert request.path == f"/openai/deployments/{DEPLOYMENT}/chat/completions"
    assert request.query == {"api-version": API_VERSION}
    assert request.headers["api-key"] == "test-key"
    assert "authorization" not in request.headers
    body = request.body
    assert body["messages"] == messages
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (50, 0.3, 0.8)
    assert (body["frequency_penalty"], body["n"]) == (0.1, 1)


@pytest.mark.parametrize(
    ("missing", "env_var"),
    [
        ("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_ENDPOINT"),
        ("OPENAI_API_VERSION", "OPENAI_API_VERSION"),
    ],
)
def test_missing_endpoint_or_version_fails_at_load(
    azure_env: FakeServer, monkeypatch: pytest.MonkeyPatch, missing: str, env_var: str
) -> None:
    monkeypatch.delenv(missing)
    llm = make()

    with pytest.raises(PotstillUserError, match=env_var):
        llm.load()
    assert not llm.is_loaded
