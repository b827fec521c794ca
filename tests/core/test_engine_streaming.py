"""The engine: streaming between steps, several LLM batches in flight, worker threads for
synchronous steps, low fixed overhead, and Pipeline.run from loops and threads."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from tests.core.fakes import EchoLLM, RecordingStep, SleepyAsyncLLM, SlowGenerator
from tests.fake_server import FakeServer

from potstill.llms import OpenAILLM
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration


def test_downstream_starts_before_upstream_ends() -> None:
    with Pipeline(name="streaming") as pipeline:
        source = SlowGenerator(batches=4, batch_size=2, pause=0.15)
        record = RecordingStep(input_batch_size=2)
        source >> record

    train = pipeline.run(use_cache=False)["default"]["train"]

    assert train["copy"] == [f"row {i}" for i in range(8)]
    assert len(source._yield_times) == 4
    # the first downstream batch ran while the generator was still producing
    assert record._times[0] < source._yield_times[-1]
    # ... in fact before the generator had even produced its second batch
    assert record._times[0] < source._yield_times[1]


def test_downstream_of_a_task_streams_too() -> None:
    with Pipeline(name="streaming-2") as pipeline:
        source = SlowGenerator(batches=3, batch_size=1, pause=0.15)
        generate = TextGeneration(llm=SleepyAsyncLLM(), input_batch_size=1)
        record = RecordingStep(input_batch_size=1, input_mappings={"instruction": "generation"})
        source >> generate >> record

    pipeline.run(use_cache=False)

    assert len(record._times) == 3
    assert record._times[0] < source._yield_times[-1]


def test_llm_calls_from_several_input_batches_are_in_flight_at_once(openai_env: FakeServer) -> None:
    openai_env.configure(latency_s=0.15)
    with Pipeline(name="in-flight") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": f"q{i}"} for i in range(16)], batch_size=2)
        generate = TextGeneration(llm=OpenAILLM(model="gpt-4"), input_batch_size=2)
        load >> generate

    train = pipeline.run(use_cache=False)["default"]["train"]

    assert train["generation"] == [f"Echo: q{i}" for i in range(16)]
    # one batch alone would have at most input_batch_size (2) requests in flight
    assert openai_env.state.peak_concurrency > 2
    assert openai_env.state.peak_concurrency >= 8


def test_in_flight_requests_are_bounded_by_the_llm_limiter(openai_env: FakeServer) -> None:
    openai_env.configure(latency_s=0.05)
    with Pipeline(name="limited") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": f"q{i}"} for i in range(20)], batch_size=2)
        generate = TextGeneration(
            llm=OpenAILLM(model="gpt-4", max_concurrent_requests=5), input_batch_size=2
        )
        load >> generate

    pipeline.run(use_cache=False)

    assert openai_env.state.peak_concurrency == 5
    assert openai_env.state.request_count == 20


def test_one_llm_shared_by_two_tasks_shares_its_limiter() -> None:
    llm = SleepyAsyncLLM(max_concurrent_requests=3)
    with Pipeline(name="shared-llm") as pipeline:
        load = LoadDataFromDicts(
            data=[{"instruction": f"delay=0.03 {i}"} for i in range(12)], batch_size=2
        )
        first = TextGeneration(name="first", llm=llm, input_batch_size=2)
        second = TextGeneration(name="second", llm=llm, input_batch_size=2)
        load >> [first, second]

    distiset = pipeline.run(use_cache=False)

    assert distiset["first"]["train"].num_rows == distiset["second"]["train"].num_rows == 12
    assert llm.peak == 3


def test_synchronous_steps_run_in_worker_threads() -> None:
    with Pipeline(name="threads") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": str(i)} for i in range(6)], batch_size=2)
        record = RecordingStep(name="record", input_batch_size=2)
        load >> record

    pipeline.run(use_cache=False)

    main = threading.current_thread().name
    assert record._pids == {os.getpid()}  # one process: no per-step processes
    assert multiprocessing.active_children() == []
    assert len(record._threads) == 3
    for name, in_loop in record._threads:
        assert name.startswith("potstill-step-record")
        assert name != main
        assert in_loop is False  # no event loop running in that thread


def test_a_local_llm_is_never_called_from_two_threads_at_once() -> None:
    with Pipeline(name="local-llm") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": str(i)} for i in range(12)], batch_size=2)
        generate = TextGeneration(name="local", llm=EchoLLM(latency=0.03), input_batch_size=2)
        load >> generate

    train = pipeline.run(use_cache=False)["default"]["train"]

    assert train["generation"] == [f"{i} #0" for i in range(12)]
    assert len(generate.llm._calls) == 6
    assert generate.llm._peak == 1
    assert generate.llm._threads == {"potstill-step-local"}


def test_fixed_overhead_is_small() -> None:
    with Pipeline(name="overhead") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": str(i)} for i in range(10)], batch_size=5)
        (
            load
            >> TextGeneration(llm=EchoLLM(), input_batch_size=5)
            >> RecordingStep(input_mappings={"instruction": "generation"})
        )
    pipeline.run(use_cache=False)  # warm imports

    started = time.monotonic()
    distiset = pipeline.run(use_cache=False)
    elapsed = time.monotonic() - started

    assert distiset["default"]["train"].num_rows == 10
    # distilabel needs ~3 s for this (process spawning, 2.5 s polling sleeps)
    assert elapsed < 1.0


@pytest.mark.asyncio
async def test_pipeline_run_inside_a_running_event_loop() -> None:
    running = asyncio.get_running_loop()
    with Pipeline(name="in-loop") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "a"}, {"instruction": "b"}])
        load >> TextGeneration(llm=SleepyAsyncLLM())

    distiset = pipeline.run(use_cache=False)

    assert distiset["default"]["train"]["generation"] == ["a #0", "b #0"]
    assert asyncio.get_running_loop() is running


@pytest.mark.asyncio
async def test_pipeline_arun_in_the_callers_loop() -> None:
    with Pipeline(name="arun") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "a"}])
        load >> TextGeneration(llm=SleepyAsyncLLM())

    distiset = await pipeline.arun(use_cache=False)

    assert distiset["default"]["train"]["generation"] == ["a #0"]


def test_pipelines_run_from_several_threads_at_once() -> None:
    def build_and_run(index: int) -> list[str]:
        with Pipeline(name=f"thread-{index}") as pipeline:
            load = LoadDataFromDicts(data=[{"instruction": f"t{index} delay=0.05"}] * 3)
            load >> TextGeneration(llm=SleepyAsyncLLM())
        return pipeline.run(use_cache=False)["default"]["train"]["generation"]

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(build_and_run, range(3)))

    assert results == [[f"t{i} delay=0.05 #0"] * 3 for i in range(3)]
