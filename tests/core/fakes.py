"""Small in-process LLMs and steps shared by the core tests.

They never touch the network, so tests that only need "an LLM" stay fast; tests about
the wire format use `OpenAILLM` against the loopback server instead. The async ones build on
the public `potstill.llms.testing.TestLLM`; `EchoLLM` is synchronous (the path local models
take), which `potstill.llms.testing` does not cover.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections import defaultdict
from typing import Any, ClassVar, List, Optional

import numpy as np
from pydantic import PrivateAttr, validate_call

from potstill.llms import LLM
from potstill.llms.testing import TestLLM
from potstill.llms.typing import GenerateOutput, Generations, HiddenState
from potstill.steps import GeneratorStep, Step, StepInput
from potstill.steps.tasks.typing import ChatType
from potstill.steps.typing import GeneratorStepOutput, StepOutput

_DELAY = re.compile(r"delay=([0-9.]+)")


def last_user_text(conversation: ChatType) -> str:
    """The content of the last user message of a conversation."""
    return [m["content"] for m in conversation if m["role"] == "user"][-1]


def tokens(text: str) -> int:
    """Whitespace tokens, the usage the fakes report."""
    return len(text.split())


class LoadCounter:
    """Counts `load()` calls per class, so tests can check nothing was loaded."""

    loads: ClassVar[int] = 0

    @classmethod
    def reset(cls) -> None:
        LoadCounter.loads = 0


class EchoLLM(LLM):
    """A synchronous LLM: `"<last user text> #<i>"` for generation i, with usage.

    A user text containing `fail` raises for the whole batch (the base class then retries
    input by input); `none` gives `None` generations.
    """

    model: str = "echo-sync"
    latency: float = 0.0

    _calls: list[list[ChatType]] = PrivateAttr(default_factory=list)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)
    _in_flight: int = PrivateAttr(default=0)
    _peak: int = PrivateAttr(default=0)
    _threads: set[str] = PrivateAttr(default_factory=set)

    def load(self) -> None:
        super().load()
        LoadCounter.loads += 1

    @property
    def model_name(self) -> str:
        return self.model

    @validate_call
    def generate(
        self,
        inputs: List[ChatType],
        num_generations: int = 1,
        suffix: str = "",
        temperature: float = 1.0,
    ) -> List[GenerateOutput]:
        """Echoes the last user message.

        Args:
            inputs: the conversations.
            num_generations: generations per input.
            suffix: appended to every generation.
            temperature: ignored; here to be validated.

        Returns:
            One list of generations per input.
        """
        with self._lock:
            self._calls.append(list(inputs))
            self._in_flight += 1
            self._peak = max(self._peak, self._in_flight)
            self._threads.add(threading.current_thread().name)
        try:
            time.sleep(self.latency)
            return self._echo(inputs, num_generations, suffix)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _echo(
        self, inputs: List[ChatType], num_generations: int, suffix: str
    ) -> List[GenerateOutput]:
        outputs: List[GenerateOutput] = []
        for conversation in inputs:
            text = last_user_text(conversation)
            if "fail" in text:
                raise RuntimeError(f"cannot answer {text!r}")
            texts = [
                None if "none" in text else f"{text} #{index}{suffix}"
                for index in range(num_generations)
            ]
            outputs.append(
                Generations(
                    texts,
                    input_tokens=[tokens(text)] * num_generations,
                    output_tokens=[tokens(t) if t else 0 for t in texts],
                )
            )
        return outputs


class SleepyAsyncLLM(TestLLM):
    """`TestLLM` (it echoes `"<text> #<i>"`, with usage) that first sleeps `delay=<s>` from the
    text, and records the order requests finished and the threads they ran on.

    A text containing `boom` raises `ValueError` (not retried).
    """

    model: str = "sleepy-async"

    _finished: list[str] = PrivateAttr(default_factory=list)
    _threads: set[str] = PrivateAttr(default_factory=set)

    def load(self) -> None:
        super().load()
        LoadCounter.loads += 1

    @property
    def peak(self) -> int:
        return self.peak_concurrency

    @property
    def finished(self) -> list[str]:
        return list(self._finished)

    async def answer(self, input: ChatType, num_generations: int, **kwargs: Any) -> Generations:
        text = last_user_text(input)
        self._threads.add(threading.current_thread().name)
        try:
            match = _DELAY.search(text)
            await asyncio.sleep(float(match.group(1)) if match else 0)
            if "boom" in text:
                raise ValueError(f"boom in {text!r}")
        finally:
            self._finished.append(text)
        return await super().answer(input, num_generations, **kwargs)


class HiddenStateLLM(LLM):
    """An LLM exposing `get_last_hidden_state`: `(len(text), 3)` arrays of known values."""

    @property
    def model_name(self) -> str:
        return "hidden-state-model"

    def generate(self, inputs: List[ChatType], num_generations: int = 1, **kwargs: Any) -> Any:
        return [["unused"] * num_generations for _ in inputs]

    def get_last_hidden_state(self, inputs: List[ChatType]) -> List[HiddenState]:
        states = []
        for conversation in inputs:
            text = last_user_text(conversation)
            rows = np.arange(len(text) * 3, dtype=np.float32).reshape(len(text), 3)
            states.append(rows + 0.5)
        return states


def expected_embedding(text: str) -> list[float]:
    """What `HiddenStateLLM` gives as the last-token embedding of `text`."""
    n = len(text)
    return [float(3 * (n - 1) + j) + 0.5 for j in range(3)]


class SlowGenerator(GeneratorStep):
    """Yields `batches` batches of `batch_size` rows `{"instruction": "row <i>"}`, sleeping
    `pause` seconds before each, and records when each batch was yielded."""

    batches: int = 4
    pause: float = 0.0

    _yield_times: list[float] = PrivateAttr(default_factory=list)

    @property
    def outputs(self) -> list[str]:
        return ["instruction"]

    def process(self, offset: int = 0) -> GeneratorStepOutput:
        size = self.batch_size or 1
        total = self.batches * size
        for start in range(offset, total, size):
            time.sleep(self.pause)
            rows = [{"instruction": f"row {i}"} for i in range(start, min(start + size, total))]
            self._yield_times.append(time.monotonic())
            yield rows, start + size >= total

    def total_rows(self) -> Optional[int]:
        return self.batches * (self.batch_size or 1)


class RecordingStep(Step):
    """Copies `instruction` to `copy`, recording each batch it receives and when."""

    _batches: list[list[dict[str, Any]]] = PrivateAttr(default_factory=list)
    _times: list[float] = PrivateAttr(default_factory=list)
    _threads: list[tuple[str, bool]] = PrivateAttr(default_factory=list)
    _pids: set[int] = PrivateAttr(default_factory=set)

    @property
    def inputs(self) -> list[str]:
        return ["instruction"]

    @property
    def outputs(self) -> list[str]:
        return ["copy"]

    def load(self) -> None:
        super().load()
        LoadCounter.loads += 1

    def process(self, inputs: StepInput) -> StepOutput:
        try:
            asyncio.get_running_loop()
            in_loop = True
        except RuntimeError:
            in_loop = False
        self._times.append(time.monotonic())
        self._threads.append((threading.current_thread().name, in_loop))
        self._pids.add(os.getpid())
        self._batches.append([dict(row) for row in inputs])
        yield [{**row, "copy": row["instruction"]} for row in inputs]


class RecordingProgress:
    """Stands in for the rich display (always on): keeps every change per step, in order."""

    instances: ClassVar[list[RecordingProgress]] = []

    def __init__(self, enabled: bool) -> None:
        self.enabled = True
        self.totals: dict[str, Optional[int]] = {}
        self.changes: dict[str, list[int]] = defaultdict(list)
        self.jobs: dict[str, list[str]] = defaultdict(list)  # what showed about batch jobs
        self._lock = threading.Lock()
        RecordingProgress.instances.append(self)

    def start(self, steps: dict[str, Optional[int]]) -> None:
        self.totals = dict(steps)

    def advance(self, step: str, rows: int) -> None:
        with self._lock:
            self.changes[step].append(rows)

    def shown(self, step: str) -> int:
        with self._lock:
            return sum(self.changes[step])

    def running_totals(self, step: str) -> list[int]:
        totals, shown = [], 0
        for change in self.changes[step]:
            shown += change
            totals.append(shown)
        return totals

    def show_jobs(self, step: str, text: str) -> None:
        with self._lock:
            self.jobs[step].append(text)

    def finish(self, step: str) -> None:
        pass

    def stop(self) -> None:
        pass
