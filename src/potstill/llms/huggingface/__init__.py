"""LLMs from the Hugging Face ecosystem: `InferenceEndpointsLLM` (`inference_endpoints`)
and `TransformersLLM` (`transformers`). Importing this package imports no SDK; the classes
are loaded on first use, through `potstill.llms`."""

from __future__ import annotations

from typing import Any

__all__ = ["InferenceEndpointsLLM", "TransformersLLM"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        import potstill.llms

        return getattr(potstill.llms, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
