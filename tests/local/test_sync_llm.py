"""What the `LLM` base class guarantees to synchronous (local) LLMs; no model is loaded."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
from pydantic import validate_call

from potstill.llms import LLM
from potstill.llms.typing import GenerateOutput, Generations
from potstill.typing import ChatType


class _NotThreadSafeLLM(LLM):
    """Records how many `generate` calls overlap; fails inputs whose text is `fail`."""

    active: int = 0
    peak: int = 0

    @property
    def model_name(self) -> str:
        return "not-thread-safe"

    @validate_call
    def generate(
        self, inputs: list[ChatType], num_generations: int = 1, delay: float = 0.05
    ) -> list[GenerateOutput]:
        """Answers each input with its own text after `delay` seconds.

        Args:
            inputs: the conversations.
            num_generations: copies per input.
            delay: seconds to sleep.
        """
        self.active += 1
        self.peak = max(self.peak, self.active)
        time.sleep(delay)
        self.active -= 1
        outputs: list[Any] = []
        for messages in inputs:
            text = messages[-1]["content"]
            if text == "fail":
                outputs.append(Generations.failed(num_generations, "ValueError: too long"))
            else:
                outputs.append(Generations.from_request([text] * num_generations))
        return outputs


def test_generate_outputs_calls_from_several_threads_take_turns() -> None:
    llm = _NotThreadSafeLLM()
    llm.load()
    results: list[Any] = [None] * 3

    def call(index: int) -> None:
        results[index] = llm.generate_outputs([[{"role": "user", "content": str(index)}]])

    threads = [threading.Thread(target=call, args=(index,)) for index in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert llm.peak == 1
    assert [result[0] for result in results] == [["0"], ["1"], ["2"]]


def test_an_input_failed_inside_generate_counts_and_logs_as_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    llm = _NotThreadSafeLLM()
    llm.load()
    with caplog.at_level(logging.WARNING, logger="potstill"):
        outputs = llm.generate_outputs(
            [[{"role": "user", "content": "ok"}], [{"role": "user", "content": "fail"}]],
            num_generations=2,
            row_offset=10,
            delay=0.0,
        )
    assert outputs[0] == ["ok", "ok"]
    assert outputs[1] == [None, None] and outputs[1].errors == ["ValueError: too long"] * 2
    assert llm.usage.requests == 1 and llm.usage.failed_requests == 1
    assert "Generation for row 11 failed: ValueError: too long" in caplog.text
