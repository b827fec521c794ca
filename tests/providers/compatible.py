"""The OpenAI-compatible providers as the tests drive them: their class, model, the
fields that point them at the loopback server, and where they send the key."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

from tests.fake_server import FakeServer, RecordedRequest
from tests.providers.contract import bearer

from potstill.llms import (
    AnyscaleLLM,
    AsyncLLM,
    AzureOpenAILLM,
    GroqLLM,
    LiteLLM,
    MistralLLM,
    OpenAILLM,
    TogetherLLM,
)

AZURE_API_VERSION = "2024-10-21"
# The loggers `LiteLLM(verbose=True)` turns up.
LITELLM_LOGGERS = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy")


@dataclass(frozen=True)
class Compatible:
    """One OpenAI-compatible provider, as these tests drive it.

    Attributes:
        id: the test id.
        cls: the provider class.
        model: the `model` the tests use.
        provider: the fake server's name for the route the class calls.
        key_env: the env var of the API key.
        fields: the fields that point the class at the loopback server.
        show_key: where the class sends the key, read from a recorded request.
        refused_error: what the error of a request with a wrong key says.
        default_base_url: the default `base_url` (for the classes with a `base_url` env var).
        base_url_env: the env var `base_url` defaults from.
    """

    id: str
    cls: type[AsyncLLM]
    model: str
    provider: str
    key_env: str
    fields: Callable[[FakeServer], dict[str, Any]]
    show_key: Callable[[RecordedRequest], Optional[str]] = bearer
    refused_error: str = "401"
    default_base_url: Optional[str] = None
    base_url_env: Optional[str] = None

    def make(self, server: FakeServer, **kwargs: Any) -> AsyncLLM:
        """The class with `model`, pointed at the server, with the given fields."""
        return self.cls(model=self.model, **{**self.fields(server), **kwargs})


OPENAI = Compatible(
    id="openai",
    cls=OpenAILLM,
    model="gpt-4o-mini",
    provider="openai",
    key_env="OPENAI_API_KEY",
    fields=lambda server: {"base_url": server.openai_base_url},
    default_base_url="https://api.openai.com/v1",
    base_url_env="OPENAI_BASE_URL",
)
ANYSCALE = Compatible(
    id="anyscale",
    cls=AnyscaleLLM,
    model="meta-llama/Meta-Llama-3-8B-Instruct",
    provider="openai",
    key_env="ANYSCALE_API_KEY",
    fields=lambda server: {"base_url": server.openai_base_url},
    default_base_url="https://api.endpoints.anyscale.com/v1",
    base_url_env="ANYSCALE_BASE_URL",
)
TOGETHER = Compatible(
    id="together",
    cls=TogetherLLM,
    model="meta-llama/Llama-3.3-70B-Instruct-Turbo",
    provider="openai",
    key_env="TOGETHER_API_KEY",
    fields=lambda server: {"base_url": server.openai_base_url},
    default_base_url="https://api.together.xyz/v1",
    base_url_env="TOGETHER_BASE_URL",
)
GROQ = Compatible(
    id="groq",
    cls=GroqLLM,
    model="llama-3.1-8b-instant",
    provider="groq",
    key_env="GROQ_API_KEY",
    fields=lambda server: {"base_url": server.url},
    default_base_url="https://api.groq.com",
    base_url_env="GROQ_BASE_URL",
)
AZURE = Compatible(
    id="azure",
    cls=AzureOpenAILLM,
    model="my-gpt-4o-deployment",
    provider="azure",
    key_env="AZURE_OPENAI_API_KEY",
    fields=lambda server: {"base_url": server.url, "api_version": AZURE_API_VERSION},
    show_key=lambda request: request.headers.get("api-key"),
)
LITELLM = Compatible(
    id="litellm",
    cls=LiteLLM,
    model="openai/gpt-fake",
    provider="openai",
    key_env="OPENAI_API_KEY",
    fields=lambda server: {"api_base": server.openai_base_url},
    refused_error="AuthenticationError",  # LiteLLM's message has no status code
)
MISTRAL = Compatible(
    id="mistral",
    cls=MistralLLM,
    model="mistral-small-latest",
    provider="mistral",
    key_env="MISTRAL_API_KEY",
    fields=lambda server: {"endpoint": f"{server.url}/mistral"},
)
