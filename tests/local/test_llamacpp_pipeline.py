"""LlamaCppLLM inside pipelines: batch sizes, the event loop, end-to-end output.

Each test loads the embedded model itself (`Pipeline.run` loads and unloads its LLMs); they
keep to a few rows and a few tokens.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from tests.core.fakes import RecordingProgress

from potstill.llms import AsyncLLM, LlamaCppLLM
from potstill.llms.llamacpp import EMBEDDED_MODEL_FILENAME
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration
from potstill.typing import ChatType

pytest.importorskip("llama_cpp")

TINY = {"max_new_tokens": 3, "temperature": 0.0}


def _recording_generate_outputs(
    monkeypatch: pytest.MonkeyPatch, calls: list[dict[str, Any]]
) -> None:
    """Records each batch LlamaCppLLM generates for: its size, thread and start/end times."""
    original = LlamaCppLLM.generate_outputs

    def recording(self: LlamaCppLLM, inputs: list[ChatType], *args: Any, **kwargs: Any) -> Any:
        call = {
            "size": len(inputs),
            "thread": threading.current_thread().name,
            "start": time.monotonic(),
        }
        calls.append(call)
        try:
            return original(self, inputs, *args, **kwargs)
        finally:
            call["end"] = time.monotonic()

    monkeypatch.setattr(LlamaCppLLM, "generate_outputs", recording)


def test_pipeline_end_to_end_with_full_size_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    _recording_generate_outputs(monkeypatch, calls)
    instructions = [f"Say the number {n}." for n in range(5)]
    with Pipeline(name="llamacpp-batches") as pipeline:
        # The generator's batches (2 rows) are smaller than the task's (3 rows).
        load = LoadDataFromDicts(data=[{"instruction": i} for i in instructions], batch_size=2)
        generate = TextGeneration(llm=LlamaCppLLM(n_threads=1), input_batch_size=3)
        load >> generate
    distiset = pipeline.run(params={generate.name: {"llm": {"generation_kwargs": TINY}}})

    assert [call["size"] for call in calls] == [3, 2]
    rows = distiset["default"]["train"]
    assert rows["instruction"] == instructions
    assert all(isinstance(text, str) and text for text in rows["generation"])
    assert set(rows["model_name"]) == {EMBEDDED_MODEL_FILENAME}
    statistics = [row[f"statistics_{generate.name}"] for row in rows["potstill_metadata"]]
    assert all(s["input_tokens"] > 20 and 1 <= s["output_tokens"] <= 3 for s in statistics)


class _ProbeLLM(AsyncLLM):
    """An async LLM that answers only once llama.cpp is busy, and notes when it answered."""

    started: Any = None
    answered_at: list[float] = []

    @property
    def model_name(self) -> str:
        return "probe"

    async def agenerate(self, input: ChatType) -> list[str]:  # type: ignore[override]
        """Waits (on the event loop) until llama.cpp is generating, then answers.

        Args:
            input: the conversation.
        """
        deadline = time.monotonic() + 120
        while not self.started.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        self.answered_at.append(time.monotonic())
        return ["ok"]


def test_generation_runs_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    started = threading.Event()
    original = LlamaCppLLM.generate_outputs

    def generate_outputs(self: LlamaCppLLM, inputs: list[ChatType], *a: Any, **k: Any) -> Any:
        call = {"thread": threading.current_thread().name, "start": time.monotonic()}
        calls.append(call)
        started.set()
        try:
            return original(self, inputs, *a, **k)
        finally:
            call["end"] = time.monotonic()

    monkeypatch.setattr(LlamaCppLLM, "generate_outputs", generate_outputs)
    probe = _ProbeLLM(started=started, answered_at=[])
    with Pipeline(name="llamacpp-loop") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "Count to ten."}] * 2)
        local = TextGeneration(llm=LlamaCppLLM(n_threads=1))
        hosted = TextGeneration(llm=probe)
        load >> [local, hosted]
    distiset = pipeline.run(
        params={local.name: {"llm": {"generation_kwargs": {"max_new_tokens": 24}}}}
    )

    assert len(calls) == 1
    assert calls[0]["thread"] != "potstill-event-loop"
    # The async step made progress on the loop while llama.cpp was generating.
    assert probe.answered_at and max(probe.answered_at) < calls[0]["end"]
    assert distiset[hosted.name]["train"]["generation"] == ["ok", "ok"]
    assert all(distiset[local.name]["train"]["generation"])


def test_the_display_moves_with_each_input_llamacpp_finishes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import potstill.pipeline.base as pipeline_base
    from potstill.utils import batch_progress

    monkeypatch.setattr(pipeline_base, "Progress", RecordingProgress)
    monkeypatch.setattr(batch_progress, "_MIN_INTERVAL_S", 0.0)
    RecordingProgress.instances.clear()
    with Pipeline(name="llamacpp-progress") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": f"Say {n}."} for n in range(3)])
        generate = TextGeneration(llm=LlamaCppLLM(n_threads=1), input_batch_size=3)
        load >> generate

    pipeline.run(params={generate.name: {"llm": {"generation_kwargs": TINY}}})

    [progress] = RecordingProgress.instances
    # One row per finished input while the batch of three runs ([3] if it only counted
    # when the batch was done), and exactly three in the end.
    assert [change for change in progress.changes[generate.name] if change] == [1, 1, 1]
    assert progress.shown(generate.name) == 3
