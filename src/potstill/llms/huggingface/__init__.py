"""LLMs from the Hugging Face ecosystem: `InferenceEndpointsLLM` (`inference_endpoints`)
and `TransformersLLM` (`transformers`). Importing this package imports no SDK, and each
class is imported when it is first used (as from `potstill.llms`)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["InferenceEndpointsLLM", "TransformersLLM"]

_MODULES = {"InferenceEndpointsLLM": "inference_endpoints", "TransformersLLM": "transformers"}

if TYPE_CHECKING:
    from potstill.llms.huggingface.inference_endpoints import (
        InferenceEndpointsLLM as InferenceEndpointsLLM,
    )
    from potstill.llms.huggingface.transformers import TransformersLLM as TransformersLLM


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
