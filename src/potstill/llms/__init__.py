"""LLMs: the `LLM`/`AsyncLLM` base classes and one class per provider.

Provider classes are imported lazily: `import potstill.llms` imports no provider module and
no SDK; `from potstill.llms import OpenAILLM` imports only `potstill.llms.openai`, and the
`openai` SDK itself is imported when the LLM is loaded.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from potstill.llms.base import LLM, AsyncLLM
from potstill.llms.typing import GenerateOutput, Generations, HiddenState, TokenUsage

# Class name -> module (relative to this package) that defines it.
_PROVIDERS: dict[str, str] = {
    "AnthropicLLM": "anthropic",
    "AnyscaleLLM": "anyscale",
    "AzureOpenAILLM": "azure",
    "CohereLLM": "cohere",
    "GroqLLM": "groq",
    "InferenceEndpointsLLM": "huggingface.inference_endpoints",
    "LiteLLM": "litellm",
    "LlamaCppLLM": "llamacpp",
    "MistralLLM": "mistral",
    "OllamaLLM": "ollama",
    "OpenAILLM": "openai",
    "TogetherLLM": "together",
    "TransformersLLM": "huggingface.transformers",
    "VertexAILLM": "vertexai",
    "vLLM": "vllm",
}

__all__ = [
    "LLM",
    "AsyncLLM",
    "GenerateOutput",
    "Generations",
    "HiddenState",
    "TokenUsage",
    *_PROVIDERS,
]

if TYPE_CHECKING:
    from potstill.llms.llamacpp import LlamaCppLLM as LlamaCppLLM
    from potstill.llms.openai import OpenAILLM as OpenAILLM


def __getattr__(name: str) -> Any:
    module = _PROVIDERS.get(name)
    if module is None:
        raise AttributeError(f"module 'potstill.llms' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
