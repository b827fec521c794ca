"""LLMs: the `LLM`/`AsyncLLM` base classes and one class per provider.

Provider classes are imported lazily: `import potstill.llms` imports no provider module and
no SDK; `from potstill.llms import OpenAILLM` imports only `potstill.llms.openai`, and the
`openai` SDK itself is imported when the LLM is loaded.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from potstill.llms.base import LLM, AsyncLLM
from potstill.llms.mixins.cuda_device_placement import CudaDevicePlacementMixin
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
    "CudaDevicePlacementMixin",
    "GenerateOutput",
    "Generations",
    "HiddenState",
    "TokenUsage",
    *_PROVIDERS,
]

if TYPE_CHECKING:
    from potstill.llms.anthropic import AnthropicLLM as AnthropicLLM
    from potstill.llms.anyscale import AnyscaleLLM as AnyscaleLLM
    from potstill.llms.azure import AzureOpenAILLM as AzureOpenAILLM
    from potstill.llms.cohere import CohereLLM as CohereLLM
    from potstill.llms.groq import GroqLLM as GroqLLM
    from potstill.llms.huggingface.inference_endpoints import (
        InferenceEndpointsLLM as InferenceEndpointsLLM,
    )
    from potstill.llms.huggingface.transformers import TransformersLLM as TransformersLLM
    from potstill.llms.litellm import LiteLLM as LiteLLM
    from potstill.llms.llamacpp import LlamaCppLLM as LlamaCppLLM
    from potstill.llms.mistral import MistralLLM as MistralLLM
    from potstill.llms.ollama import OllamaLLM as OllamaLLM
    from potstill.llms.openai import OpenAILLM as OpenAILLM
    from potstill.llms.together import TogetherLLM as TogetherLLM
    from potstill.llms.vertexai import VertexAILLM as VertexAILLM
    from potstill.llms.vllm import vLLM as vLLM


def __getattr__(name: str) -> Any:
    module = _PROVIDERS.get(name)
    if module is None:
        raise AttributeError(f"module 'potstill.llms' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
