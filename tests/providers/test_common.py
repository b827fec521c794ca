"""What every provider class of this group shares: registry, runtime parameters, dumps."""

from __future__ import annotations

import importlib
import json

import pytest

from potstill.llms import LLM, AsyncLLM
from potstill.llms import __dict__ as llms_namespace

CLASSES = {
    "AzureOpenAILLM": ("azure", {"model": "dep", "api_version": "2024-10-21"}),
    "TogetherLLM": ("together", {"model": "m"}),
    "AnyscaleLLM": ("anyscale", {"model": "m"}),
    "GroqLLM": ("groq", {"model": "m"}),
    "MistralLLM": ("mistral", {"model": "m"}),
    "LiteLLM": ("litellm", {"model": "openai/m"}),
}


def provider_class(name: str) -> type[AsyncLLM]:
    module = importlib.import_module("potstill.llms")
    return getattr(module, name)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_lazy_registry_resolves_the_class(name: str) -> None:
    cls = provider_class(name)

    assert cls.__name__ == name
    assert cls.__module__ == f"potstill.llms.{CLASSES[name][0]}"
    assert issubclass(cls, AsyncLLM) and issubclass(cls, LLM)
    assert name in llms_namespace["__all__"]


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_every_generation_kwarg_has_a_description(name: str) -> None:
    llm = provider_class(name)(**CLASSES[name][1])

    [info] = [
        item for item in llm.get_runtime_parameters_info() if item["name"] == "generation_kwargs"
    ]

    assert info["keys"], "the class has generation kwargs"
    undocumented = [key["name"] for key in info["keys"] if not key.get("description")]
    assert undocumented == []
    assert "api_key" in llm.runtime_parameters_names
    assert "max_retries" in llm.runtime_parameters_names


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_dump_round_trips_without_the_key(name: str) -> None:
    cls = provider_class(name)
    llm = cls(**CLASSES[name][1], api_key="sk-dump-secret", generation_kwargs={"temperature": 0.5})

    dump = llm.dump()
    rebuilt = cls.from_dict(json.loads(json.dumps(dump)))

    assert "sk-dump-secret" not in json.dumps(dump)
    assert type(rebuilt) is cls
    assert rebuilt.api_key is None
    assert rebuilt.generation_kwargs == {"temperature": 0.5}
    assert rebuilt.dump() == dump


TIMEOUTS = {
    "OpenAILLM": ({"model": "m"}, 120.0),
    "AzureOpenAILLM": (CLASSES["AzureOpenAILLM"][1], 120.0),
    "TogetherLLM": ({"model": "m"}, 120.0),
    "AnyscaleLLM": ({"model": "m"}, 120.0),
    "GroqLLM": ({"model": "m"}, 120.0),
    "MistralLLM": ({"model": "m"}, 120.0),
    "LiteLLM": ({"model": "openai/m"}, 600.0),
    "AnthropicLLM": ({"model": "m"}, 600.0),
    "CohereLLM": ({"model": "m"}, 120.0),
    "OllamaLLM": ({"model": "m"}, 120.0),
    "VertexAILLM": ({"model": "m"}, 120.0),
    "InferenceEndpointsLLM": ({"base_url": "http://127.0.0.1:9"}, 120.0),
}


@pytest.mark.parametrize("name", sorted(TIMEOUTS))
def test_timeout_is_float_seconds(name: str) -> None:
    kwargs, default = TIMEOUTS[name]
    llm = provider_class(name)(**kwargs)

    assert isinstance(llm.timeout, float)
    assert llm.timeout == default
    llm.timeout = 2.5
    assert llm.timeout == 2.5
