"""Shared by the CLI tests: the pipeline they save and run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from potstill.llms import OpenAILLM
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration

QUESTIONS = ["What's the capital of Spain?", "What's the capital of France?"]
ANSWERS = ["The capital of Spain is Madrid.", "The capital of France is Paris."]


def build_pipeline(name: str = "cli-test", **llm_kwargs: Any) -> Pipeline:
    """Two questions >> TextGeneration(name="text_generation") on OpenAILLM."""
    with Pipeline(name=name, description="Two questions about capitals.") as pipeline:
        load = LoadDataFromDicts(name="load", data=[{"instruction": q} for q in QUESTIONS])
        generate = TextGeneration(
            name="text_generation", llm=OpenAILLM(model="gpt-4o-mini", **llm_kwargs)
        )
        load >> generate
    return pipeline


def run(invoke: Any, config: Path, output: Path, *args: str) -> Any:
    """`potstill pipeline run --config CONFIG --output OUTPUT ARGS...` through `invoke`."""
    return invoke("pipeline", "run", "--config", str(config), "--output", str(output), *args)
