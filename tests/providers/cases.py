"""Every hosted provider as the contract tests drive it: its class, what an instance needs,
the fields that point it at the loopback server, and where it sends its key.

`HOSTED` must hold one case per hosted provider of the registry (`potstill.llms`): every
registered class that is an `AsyncLLM`. `test_contract.py` fails naming a class that has no
case here, so a new provider cannot be left out of the contract.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pytest
from tests.fake_server import FakeServer, RecordedRequest
from tests.providers.contract import bearer

import potstill.llms
from potstill.llms import AsyncLLM

AZURE_API_VERSION = "2024-10-21"
# The loggers `LiteLLM(verbose=True)` turns up.
LITELLM_LOGGERS = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy")


def hosted_classes() -> dict[str, type[AsyncLLM]]:
    """Name -> class of every provider in the registry that calls a hosted API (`AsyncLLM`).

    Importing the classes imports their modules, not their SDKs.
    """
    classes = {name: getattr(potstill.llms, name) for name in potstill.llms._PROVIDERS}
    return {name: cls for name, cls in classes.items() if issubclass(cls, AsyncLLM)}


def hf_hub_for_loopback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No token saved by `hf auth login` on the machine running the tests is used, and
    `huggingface_hub` reaches the loopback server even when it was first imported with
    `HF_HUB_OFFLINE=1` (the suite's setting, which it reads once)."""
    constants = importlib.import_module("huggingface_hub.constants")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf" / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf" / "stored"))


# Google settings the Vertex AI SDK reads from the environment.
GOOGLE_ENV = (
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_CLOUD_LOCATION",
    "GOOGLE_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_GENAI_USE_ENTERPRISE",
    "GOOGLE_VERTEX_BASE_URL",
    "GOOGLE_APPLICATION_CREDENTIALS",
)


def isolated_google_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No Google setting, gcloud login or metadata server of the machine running the tests
    is used."""
    for name in GOOGLE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))  # no gcloud ADC file
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # never probe the metadata server


def _google_credentials(token: str) -> dict[str, Any]:
    """Static OAuth credentials for Vertex AI: the token is sent as it is, never refreshed."""
    credentials = importlib.import_module("google.oauth2.credentials")
    return {"credentials": credentials.Credentials(token=token)}


@dataclass(frozen=True)
class ProviderCase:
    """One hosted provider, as the contract tests drive it.

    Attributes:
        cls: the provider class.
        kwargs: what every instance needs besides the server and the key (the model...).
        target: the fields that point an instance at the loopback server.
        route: the fake server's name for the route the class calls.
        key_env: the env var `load()` names when there is no key (`None`: none is needed).
        with_key: the fields that give an instance a key.
        show_key: where the class sends the key, read from a recorded request.
        refused_error: what the error of a request with a wrong key says.
        empty_reason: what the error of an answer without text says.
        timeout: the default `timeout`.
        default_base_url: the default `base_url` (the classes that read it from an env var).
        temperature: the generation kwargs that set the temperature to 0.2...
        sent_temperature: ...and where the temperature is in the body the server received.
        setup: prepares the test's environment (monkeypatch, tmp_path).
        marks: pytest marks for this provider's cases.
    """

    cls: type[AsyncLLM]
    kwargs: dict[str, Any]
    target: Callable[[FakeServer], dict[str, Any]]
    route: str
    key_env: Optional[str]
    with_key: Callable[[str], dict[str, Any]] = lambda key: {"api_key": key}
    show_key: Callable[[RecordedRequest], Optional[str]] = bearer
    refused_error: str = "401"
    empty_reason: str = "no content"
    timeout: float = 120.0
    default_base_url: Optional[str] = None
    temperature: dict[str, Any] = field(default_factory=lambda: {"temperature": 0.2})
    sent_temperature: Callable[[dict[str, Any]], Any] = lambda body: body["temperature"]
    setup: Optional[Callable[[pytest.MonkeyPatch, Path], None]] = None
    marks: tuple[Any, ...] = ()

    @property
    def id(self) -> str:
        """The test id: the class name."""
        return self.cls.__name__

    @property
    def native_n(self) -> bool:
        """Whether the class sends `num_generations` as the API's `n` in one request."""
        return self.cls.generation_spec().native_num_generations

    def make(self, server: FakeServer, key: Optional[str] = "test-key", **fields: Any) -> AsyncLLM:
        """An instance pointed at the server, with the key (unless `key` is `None`) and the
        given fields."""
        with_key = self.with_key(key) if key is not None else {}
        return self.cls(**{**self.kwargs, **self.target(server), **with_key, **fields})


def _openai_compatible(name: str, model: str, env: str, url: str) -> ProviderCase:
    return ProviderCase(
        cls=getattr(potstill.llms, name),
        kwargs={"model": model},
        target=lambda server: {"base_url": server.openai_base_url},
        route="openai",
        key_env=f"{env}_API_KEY",
        default_base_url=url,
    )


HOSTED = [
    _openai_compatible("OpenAILLM", "gpt-4o-mini", "OPENAI", "https://api.openai.com/v1"),
    _openai_compatible(
        "TogetherLLM",
        "meta-llama/Llama-3.3-70B-Instruct-Turbo",
        "TOGETHER",
        "https://api.together.xyz/v1",
    ),
    _openai_compatible(
        "AnyscaleLLM",
        "meta-llama/Meta-Llama-3-8B-Instruct",
        "ANYSCALE",
        "https://api.endpoints.anyscale.com/v1",
    ),
    ProviderCase(
        cls=potstill.llms.AzureOpenAILLM,
        kwargs={"model": "my-gpt-4o-deployment", "api_version": AZURE_API_VERSION},
        target=lambda server: {"base_url": server.url},
        route="azure",
        key_env="AZURE_OPENAI_API_KEY",
        show_key=lambda request: request.headers.get("api-key"),
    ),
    ProviderCase(
        cls=potstill.llms.GroqLLM,
        kwargs={"model": "llama-3.1-8b-instant"},
        target=lambda server: {"base_url": server.url},
        route="groq",
        key_env="GROQ_API_KEY",
        default_base_url="https://api.groq.com",
    ),
    ProviderCase(
        cls=potstill.llms.AnthropicLLM,
        kwargs={"model": "claude-potstill-test"},
        target=lambda server: {"base_url": server.url},
        route="anthropic",
        key_env="ANTHROPIC_API_KEY",
        show_key=lambda request: request.headers.get("x-api-key"),
        empty_reason="no text content",
        timeout=600.0,
        default_base_url="https://api.anthropic.com",
    ),
    ProviderCase(
        cls=potstill.llms.CohereLLM,
        kwargs={"model": "command-r-plus"},
        target=lambda server: {"base_url": server.url},
        route="cohere",
        key_env="COHERE_API_KEY",
        empty_reason="empty answer",
        default_base_url="https://api.cohere.com",
        # The cohere SDK itself uses a pydantic v1 attribute when it parses responses.
        marks=(pytest.mark.filterwarnings("ignore:The `__fields__` attribute is deprecated"),),
    ),
    ProviderCase(
        cls=potstill.llms.MistralLLM,
        kwargs={"model": "mistral-small-latest"},
        target=lambda server: {"endpoint": f"{server.url}/mistral"},
        route="mistral",
        key_env="MISTRAL_API_KEY",
    ),
    ProviderCase(
        cls=potstill.llms.LiteLLM,
        kwargs={"model": "openai/gpt-fake"},
        target=lambda server: {"api_base": server.openai_base_url},
        route="openai",
        key_env="OPENAI_API_KEY",  # the model's provider's env var, found by LiteLLM
        refused_error="AuthenticationError",  # LiteLLM's message has no status code
        timeout=600.0,
    ),
    ProviderCase(
        cls=potstill.llms.OllamaLLM,
        kwargs={"model": "llama3.2"},
        target=lambda server: {"host": server.url},
        route="ollama",
        key_env=None,  # a local Ollama needs no key; ollama.com gets it as a bearer token
        empty_reason="empty answer",
        temperature={"options": {"temperature": 0.2}},
        sent_temperature=lambda body: body["options"]["temperature"],
    ),
    ProviderCase(
        cls=potstill.llms.VertexAILLM,
        kwargs={"model": "gemini-2.5-flash", "project": "test-project", "location": "us-central1"},
        target=lambda server: {"base_url": server.url},
        route="vertexai",
        key_env=None,  # Google credentials, not a key
        with_key=_google_credentials,
        empty_reason="SAFETY",
        sent_temperature=lambda body: body["generationConfig"]["temperature"],
        setup=isolated_google_env,
        # google-genai subclasses aiohttp's ClientSession, which aiohttp warns about.
        marks=(pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession"),),
    ),
    ProviderCase(
        cls=potstill.llms.InferenceEndpointsLLM,
        kwargs={},
        target=lambda server: {"base_url": f"{server.url}/tgi"},
        route="tgi",
        key_env="HF_TOKEN",
        setup=hf_hub_for_loopback,
    ),
]


def cases(select: Callable[[ProviderCase], bool] = lambda case: True) -> list[Any]:
    """The cases that `select` keeps, as `pytest.param`s with their ids and marks."""
    return [pytest.param(case, id=case.id, marks=case.marks) for case in HOSTED if select(case)]
