"""`potstill.llms.testing`: `TestLLM` and `FunctionLLM`, the public LLMs for tests."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from potstill.llms.testing import FunctionLLM, RecordedRequest, TestLLM
from potstill.llms.typing import Generations


def chat(text: str, system: str = "") -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system}] if system else []
    return [*messages, {"role": "user", "content": text}]


def loaded(llm: Any) -> Any:
    llm.load()
    return llm


def test_test_llm_echoes_the_last_message_per_generation_with_word_usage() -> None:
    llm = loaded(TestLLM())

    [out] = llm.generate_outputs([chat("two words", system="be brief")], num_generations=2)

    assert out == ["two words #0", "two words #1"]
    assert out.usage.input_tokens == 4  # every message's words
    assert out.usage.output_tokens == 6
    assert out.input_tokens == [4, None]  # one request, reported once


def test_test_llm_answers_output_text_when_set() -> None:
    llm = loaded(TestLLM(output_text="positive"))

    assert llm.generate(inputs=[chat("a"), chat("b")], num_generations=2) == [
        ["positive", "positive"],
        ["positive", "positive"],
    ]


def test_test_llm_records_each_request_with_its_kwargs() -> None:
    llm = loaded(TestLLM(generation_kwargs={"temperature": 0.2}))

    llm.generate_outputs([chat("a")], num_generations=3, **llm.get_generation_kwargs())
    llm.generate(inputs=[chat("b")], top_p=0.5)

    assert llm.requests == [
        RecordedRequest(chat("a"), 3, {"temperature": 0.2}),
        RecordedRequest(chat("b"), 1, {"top_p": 0.5}),
    ]


def test_test_llm_keeps_no_requests_when_told() -> None:
    llm = loaded(TestLLM(keep_requests=False))

    assert llm.generate(inputs=[chat("a")]) == [["a #0"]]
    assert llm.requests == []


def test_latency_and_the_concurrency_limit_show_in_peak_concurrency() -> None:
    llm = loaded(TestLLM(latency=0.05, max_concurrent_requests=3))
    start = time.monotonic()

    llm.generate(inputs=[chat(f"q{i}") for i in range(9)])

    assert llm.peak_concurrency == 3
    assert time.monotonic() - start >= 0.15  # three rounds of three


def test_execution_settings_of_test_llms_change_no_identity() -> None:
    assert TestLLM(latency=1.0, keep_requests=False).cache_identity() == (
        TestLLM().cache_identity()
    )
    assert TestLLM(output_text="x").cache_identity() != TestLLM().cache_identity()


def test_requests_answered_from_the_response_cache_are_not_sent(tmp_path: Path) -> None:
    first = loaded(TestLLM(use_response_cache=True, response_cache_dir=str(tmp_path)))
    second = loaded(TestLLM(use_response_cache=True, response_cache_dir=str(tmp_path)))

    assert first.generate(inputs=[chat("a")]) == second.generate(inputs=[chat("a")])
    assert len(first.requests) == 1
    assert second.requests == []
    assert second.usage.cached_requests == 1


def test_function_llm_calls_the_function_once_per_generation() -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    def shout(input: Any, **kwargs: Any) -> str:
        calls.append((input[-1]["content"], kwargs))
        return input[-1]["content"].upper()

    llm = loaded(FunctionLLM(function=shout))

    assert llm.generate(inputs=[chat("hi")], num_generations=2, temperature=0.5) == [["HI", "HI"]]
    assert calls == [("hi", {"temperature": 0.5})] * 2


def test_function_llm_calls_a_function_taking_num_generations_once_per_request() -> None:
    calls: list[int] = []

    async def several(input: Any, num_generations: int) -> Generations:
        calls.append(num_generations)
        await asyncio.sleep(0)
        return Generations.from_request(
            [f"v{i}" for i in range(num_generations)], input_tokens=7, output_tokens=3
        )

    llm = loaded(FunctionLLM(function=several))
    [out] = llm.generate_outputs([chat("x")], num_generations=3)

    assert out == ["v0", "v1", "v2"]
    assert calls == [3]
    assert (out.usage.input_tokens, out.usage.output_tokens) == (7, 3)


def test_what_the_function_raises_fails_that_row_only() -> None:
    def picky(input: Any, **kwargs: Any) -> str:
        if "bad" in input[-1]["content"]:
            raise ValueError("refused")
        return "ok"

    llm = loaded(FunctionLLM(function=picky, max_retries=3))
    outputs = llm.generate_outputs([chat("fine"), chat("bad"), chat("fine too")])

    assert outputs == [["ok"], [None], ["ok"]]
    assert outputs[1].errors == ["ValueError: refused"]
    assert llm.usage.retries == 0  # a ValueError is not transient


def test_a_transient_error_from_the_function_is_retried() -> None:
    attempts: list[int] = []

    def flaky(input: Any, **kwargs: Any) -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise TimeoutError("slow")
        return "done"

    llm = loaded(FunctionLLM(function=flaky, retry_backoff=0.01))

    assert llm.generate(inputs=[chat("x")]) == [["done"]]
    assert len(attempts) == 2
    assert llm.usage.retries == 1


def test_the_function_is_part_of_the_identity() -> None:
    def one(input: Any, **kwargs: Any) -> str:
        return "1"

    def two(input: Any, **kwargs: Any) -> str:
        return "2"

    identity = FunctionLLM(function=one).cache_identity()
    assert "0x" not in str(identity["function"])
    assert identity != FunctionLLM(function=two).cache_identity()


@pytest.mark.parametrize("llm_class", [TestLLM, FunctionLLM])
def test_test_llms_are_not_collected_as_test_classes(llm_class: type) -> None:
    assert llm_class.__test__ is False
