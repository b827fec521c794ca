"""Values that cannot work are refused with an error naming the field, never run."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from pydantic import ValidationError
from tests.core.fakes import EchoLLM

from potstill.errors import PotstillUserError
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration

ROWS = [{"instruction": f"q{i}"} for i in range(3)]


@pytest.mark.parametrize("size", [0, -1])
def test_a_generator_batch_size_must_be_positive(size: int) -> None:
    with pytest.raises(ValidationError, match=r"batch_size\n.*greater than 0"):
        LoadDataFromDicts(data=ROWS, batch_size=size)


@pytest.mark.parametrize("size", [0, -1])
def test_a_batch_size_given_at_run_time_must_be_positive(size: int) -> None:
    with Pipeline(name=f"bad-batch-size-{size + 1}") as pipeline:
        LoadDataFromDicts(name="load", data=ROWS) >> TextGeneration(llm=EchoLLM())

    with pytest.raises(PotstillUserError, match=r"batch_size.*'load'.*greater than 0"):
        pipeline.run(params={"load": {"batch_size": size}}, use_cache=False)


@pytest.mark.parametrize("size", [0, -1])
def test_an_input_batch_size_must_be_positive(size: int) -> None:
    with pytest.raises(ValidationError, match=r"input_batch_size\n.*greater than 0"):
        TextGeneration(llm=EchoLLM(), input_batch_size=size)


PROVIDERS: dict[str, dict[str, Any]] = {
    "OpenAILLM": {"model": "m"},
    "AzureOpenAILLM": {"model": "dep", "api_version": "2024-10-21"},
    "TogetherLLM": {"model": "m"},
    "AnyscaleLLM": {"model": "m"},
    "GroqLLM": {"model": "m"},
    "MistralLLM": {"model": "m"},
    "LiteLLM": {"model": "openai/m"},
    "AnthropicLLM": {"model": "m"},
    "CohereLLM": {"model": "m"},
    "OllamaLLM": {"model": "m"},
    "VertexAILLM": {"model": "m"},
    "InferenceEndpointsLLM": {"base_url": "http://127.0.0.1:9"},
}


@pytest.mark.parametrize("timeout", [0, -1, "0"])
@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_a_provider_timeout_must_be_positive(name: str, timeout: Any) -> None:
    cls = getattr(importlib.import_module("potstill.llms"), name)

    with pytest.raises(ValidationError, match=r"timeout\n.*greater than 0"):
        cls(**PROVIDERS[name], timeout=timeout)
    llm = cls(**PROVIDERS[name])
    with pytest.raises(PotstillUserError, match=r"'timeout'.*greater than 0"):
        llm.set_runtime_parameters({"timeout": timeout})
