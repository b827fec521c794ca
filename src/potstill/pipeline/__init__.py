"""Pipelines: wire steps together and run them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from potstill.pipeline.routing_batch_function import routing_batch_function, sample_n_steps

__all__ = ["Pipeline", "RayPipeline", "routing_batch_function", "sample_n_steps"]

if TYPE_CHECKING:
    from potstill.pipeline.base import Pipeline
    from potstill.pipeline.ray import RayPipeline


def __getattr__(name: str) -> Any:
    # Lazy, because steps import `potstill.pipeline.context` and the pipeline imports steps.
    if name == "Pipeline":
        from potstill.pipeline.base import Pipeline

        return Pipeline
    if name == "RayPipeline":  # importing it does not import Ray
        from potstill.pipeline.ray import RayPipeline

        return RayPipeline
    raise AttributeError(f"module 'potstill.pipeline' has no attribute {name!r}")
