"""Shared builders for the reliability tests."""

from __future__ import annotations

from typing import Any

from tests.fake_server import FakeServer

from potstill.llms import OpenAILLM
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration


def make_llm(server: FakeServer, **fields: Any) -> OpenAILLM:
    """An OpenAILLM pointed at the loopback server."""
    fields.setdefault("retry_backoff", 0.01)  # keep retries fast in tests
    return OpenAILLM(
        model="test-model", base_url=server.openai_base_url, api_key="test-key", **fields
    )


def generation_pipeline(
    server: FakeServer,
    rows: int,
    name: str = "reliability",
    batch_size: int = 10,
    **llm_fields: Any,
) -> tuple[Pipeline, TextGeneration]:
    """`LoadDataFromDicts` of `q0..qN` >> `TextGeneration` on the loopback server."""
    with Pipeline(name=name) as pipeline:
        load = LoadDataFromDicts(
            data=[{"instruction": f"q{i}"} for i in range(rows)], batch_size=batch_size
        )
        task = TextGeneration(llm=make_llm(server, **llm_fields), input_batch_size=batch_size)
        load >> task
    return pipeline, task


def assert_exactly_once_and_aligned(rows: Any, expected: int) -> None:
    """Every input row once, in order, each generation answering its own instruction."""
    instructions = rows["instruction"]
    assert instructions == [f"q{i}" for i in range(expected)]
    for instruction, generation in zip(instructions, rows["generation"]):
        assert generation == f"Echo: {instruction}", (instruction, generation)
