"""`AsyncLLM.generate` from a plain call, a running event loop and several threads;
bounded concurrency, input order, per-request error isolation and usage."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from tests.core.fakes import SleepyAsyncLLM
from tests.fake_server import FakeServer

from potstill.errors import LLMNotLoadedError
from potstill.llms import OpenAILLM


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def openai_llm(**kwargs: object) -> OpenAILLM:
    llm = OpenAILLM(model="gpt-4", **kwargs)
    llm.load()
    return llm


def _assert_no_loop_patching() -> None:
    # nest_asyncio marks what it patches; potstill must never need it.
    assert "nest_asyncio" not in sys.modules
    assert not getattr(asyncio, "_nest_patched", False)


# -- the three event-loop situations ------------------------------------------------------


def test_plain_call(openai_env: FakeServer) -> None:
    llm = openai_llm()

    outputs = llm.generate(inputs=[chat("What's the capital of Spain?"), chat("hello")])

    assert outputs == [["The capital of Spain is Madrid."], ["Hello! How can I help you today?"]]
    assert len(openai_env.requests) == 2
    _assert_no_loop_patching()


@pytest.mark.asyncio
async def test_sync_generate_inside_a_running_event_loop(openai_env: FakeServer) -> None:
    running = asyncio.get_running_loop()
    llm = openai_llm()

    outputs = llm.generate(inputs=[chat("What's the capital of Spain?")])

    assert outputs == [["The capital of Spain is Madrid."]]
    # the caller's loop is untouched and still usable
    assert asyncio.get_running_loop() is running
    assert not running.is_closed()
    await asyncio.sleep(0)
    _assert_no_loop_patching()


@pytest.mark.asyncio
async def test_sync_generate_twice_in_a_running_loop_reuses_the_llm(openai_env: FakeServer) -> None:
    llm = openai_llm()

    first = llm.generate(inputs=[chat("hello")])
    second = llm.generate(inputs=[chat("say hello")])

    assert (first, second) == ([["Hello! How can I help you today?"]], [["Hello!"]])


@pytest.mark.asyncio
async def test_agenerate_outputs_can_be_awaited_in_the_callers_loop() -> None:
    llm = SleepyAsyncLLM()
    llm.load()

    outputs = await llm.agenerate_outputs([chat("a"), chat("b")], num_generations=2)

    assert outputs == [["a #0", "a #1"], ["b #0", "b #1"]]


def test_generate_from_several_threads_at_once(openai_env: FakeServer) -> None:
    openai_env.configure(latency_s=0.2)
    llm = openai_llm()
    barrier = threading.Barrier(4)

    def work(worker: int) -> list[list[str | None]]:
        barrier.wait()
        return llm.generate(inputs=[chat(f"thread {worker} row {row}") for row in range(5)])

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(work, range(4)))

    for worker, outputs in enumerate(results):
        assert outputs == [[f"Echo: thread {worker} row {row}"] for row in range(5)]
    assert len(openai_env.requests) == 20
    # the threads' requests overlapped: they were not serialised one call after another
    assert openai_env.state.peak_concurrency > 5
    _assert_no_loop_patching()


def test_threads_share_the_llm_limiter(openai_env: FakeServer) -> None:
    openai_env.configure(latency_s=0.05)
    llm = openai_llm(max_concurrent_requests=3)

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(
            pool.map(lambda w: llm.generate(inputs=[chat(f"t{w} {i}") for i in range(4)]), range(3))
        )

    assert [len(r) for r in results] == [4, 4, 4]
    assert openai_env.state.peak_concurrency == 3


# -- concurrency, order, failures, usage ---------------------------------------------------


def test_concurrency_is_bounded_by_max_concurrent_requests(openai_env: FakeServer) -> None:
    openai_env.configure(latency_s=0.05)
    llm = openai_llm(max_concurrent_requests=3)

    outputs = llm.generate(inputs=[chat(f"row {i}") for i in range(12)])

    assert outputs == [[f"Echo: row {i}"] for i in range(12)]
    assert openai_env.state.peak_concurrency == 3


def test_requests_run_concurrently_up_to_the_limit(openai_env: FakeServer) -> None:
    openai_env.configure(latency_s=0.3)
    llm = openai_llm()  # default limit (64) is above the batch size

    llm.generate(inputs=[chat(f"row {i}") for i in range(10)])

    assert openai_env.state.peak_concurrency == 10


def test_changed_limit_applies_to_later_calls() -> None:
    llm = SleepyAsyncLLM(max_concurrent_requests=2)
    llm.load()
    llm.generate(inputs=[chat(f"delay=0.02 {i}") for i in range(6)])
    assert llm.peak == 2

    llm.set_runtime_parameters({"max_concurrent_requests": 5})
    llm.generate(inputs=[chat(f"delay=0.05 {i}") for i in range(10)])

    assert llm.peak == 5


def test_output_order_equals_input_order(openai_env: FakeServer) -> None:
    llm = openai_llm()
    delays = [0.3, 0.2, 0.1, 0.0]
    texts = [f"row {i} [[delay={d}]]" for i, d in enumerate(delays)]

    outputs = llm.generate(inputs=[chat(t) for t in texts])

    assert outputs == [[f"Echo: row {i}"] for i in range(4)]
    # the server finished them in the opposite order, so order was restored
    finished = [r.body["messages"][0]["content"] for r in openai_env.requests]
    assert finished == list(reversed(texts))


def test_output_order_with_num_generations_fan_out() -> None:
    llm = SleepyAsyncLLM()
    llm.load()
    texts = ["delay=0.06 a", "delay=0.0 b", "delay=0.03 c"]

    outputs = llm.generate(inputs=[chat(t) for t in texts], num_generations=2)

    assert outputs == [[f"{t} #0", f"{t} #1"] for t in texts]
    assert llm.finished[0] == "delay=0.0 b"


def test_failed_request_gives_none_for_that_generation_only(
    openai_env: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    llm = openai_llm(max_retries=0)

    with caplog.at_level(logging.WARNING, logger="potstill"):
        outputs = llm.generate(
            inputs=[chat("hello"), chat("boom [[status=500]]"), chat("say hello")],
            num_generations=2,
        )

    assert outputs[0] == [
        "Hello! How can I help you today?",
        "Hello! How can I help you today? (sample 1)",
    ]
    assert outputs[1] == [None, None]
    assert outputs[2] == ["Hello!", "Hello! (sample 1)"]
    assert outputs[1].errors[0] is not None and "500" in outputs[1].errors[0]
    assert outputs[0].errors == [None, None]
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 1
    assert "row 1" in failures[0].getMessage()
    assert "500" in failures[0].getMessage()
    assert llm.usage.failed_requests == 1
    assert llm.usage.requests == 2


def test_failure_without_native_n_isolates_each_generation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from pydantic import validate_call

    from potstill.llms import AsyncLLM

    class OneAtATime(AsyncLLM):
        @property
        def model_name(self) -> str:
            return "one"

        @validate_call
        async def agenerate(self, input: list) -> list:  # no num_generations: fan-out
            """One generation per call.

            Args:
                input: the conversation.
            """
            text = input[-1]["content"]
            if "bad" in text:
                raise ValueError("bad input")
            return [text.upper()]

    llm = OneAtATime(max_retries=0)
    llm.load()

    with caplog.at_level(logging.WARNING, logger="potstill"):
        outputs = llm.generate(inputs=[chat("x"), chat("bad")], num_generations=3)

    assert outputs == [["X", "X", "X"], [None, None, None]]
    assert sum("row 1" in r.getMessage() for r in caplog.records) == 3


def test_usage_is_available_per_generation_and_per_llm(openai_env: FakeServer) -> None:
    llm = openai_llm()

    outputs = llm.generate(
        inputs=[chat("What's the capital of Spain?"), chat("hello")], num_generations=2
    )

    # prompt tokens are whitespace tokens of the user text; native n reports usage once
    assert outputs[0].input_tokens == [5, None]
    assert outputs[0].output_tokens == [6 + 8, None]
    assert outputs[1].input_tokens == [1, None]
    usage = llm.usage
    assert usage.requests == 2
    assert usage.input_tokens == 5 + 1
    assert usage.output_tokens == sum(o.output_tokens[0] for o in outputs)
    server_tokens = sum(
        r.body["n"] for r in openai_env.requests
    )  # one request per input, carrying n
    assert server_tokens == 4


def test_unloaded_async_llm_fails_before_any_request(openai_env: FakeServer) -> None:
    llm = OpenAILLM(model="gpt-4")

    with pytest.raises(LLMNotLoadedError, match=r"OpenAILLM is not loaded: call `llm.load\(\)`"):
        llm.generate(inputs=[chat("hello")])

    assert openai_env.state.request_count == 0


def test_calls_run_on_one_background_loop_not_the_callers_thread() -> None:
    llm = SleepyAsyncLLM()
    llm.load()

    llm.generate(inputs=[chat("a")])

    assert threading.current_thread().name not in llm._threads


def test_num_generations_is_coerced_like_validate_call_or_rejected_by_name() -> None:
    from potstill.errors import PotstillUserError

    llm = SleepyAsyncLLM()
    llm.load()

    assert llm.generate(inputs=[chat("a")], num_generations="2") == [["a #0", "a #1"]]
    with pytest.raises(PotstillUserError, match="`num_generations` must be a positive integer"):
        llm.generate(inputs=[chat("a")], num_generations="zero")
    with pytest.raises(PotstillUserError, match="num_generations"):
        llm.generate(inputs=[chat("a")], num_generations=0)


def _portal_client(llm: OpenAILLM) -> object:
    from potstill.utils.portal import portal

    return llm._loop_states[portal.loop].client


def _wait_closed(client: object) -> bool:
    import time

    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        if client.is_closed():  # type: ignore[attr-defined]
            return True
        time.sleep(0.01)
    return False


def test_unload_closes_the_sdk_client(openai_env: FakeServer) -> None:
    llm = openai_llm()
    llm.generate(inputs=[chat("hello")])
    client = _portal_client(llm)
    assert not client.is_closed()  # type: ignore[attr-defined]

    llm.unload()

    assert _wait_closed(client)
    assert not llm.is_loaded


def test_a_dropped_llm_closes_its_sdk_client(openai_env: FakeServer) -> None:
    import gc

    llm = openai_llm()
    llm.generate(inputs=[chat("hello")])
    client = _portal_client(llm)

    del llm
    gc.collect()

    # without this, aiohttp reports "Unclosed client session" and the connection leaks
    assert _wait_closed(client)


@pytest.mark.asyncio
async def test_a_client_without_close_is_closed_by_leaving_its_async_context() -> None:
    from potstill.llms.clients import close_client

    class ContextOnly:
        exited: object = None

        async def __aexit__(self, *exc: object) -> None:
            self.exited = exc

    class Closable(ContextOnly):
        closed = False

        async def close(self) -> None:
            self.closed = True

    context_only, closable = ContextOnly(), Closable()
    await close_client(context_only)
    await close_client(closable)

    assert context_only.exited == (None, None, None)
    assert closable.closed and closable.exited is None  # `close()` wins when there is one


@pytest.mark.asyncio
@pytest.mark.parametrize("provider", ["CohereLLM", "MistralLLM"])
async def test_unload_leaves_the_async_context_of_cohere_and_mistral_clients(
    provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Their SDK clients have no `close()`: only leaving the context closes the HTTP client.
    import potstill.llms as llms

    cls = getattr(llms, provider)
    url = {"base_url": "http://127.0.0.1:9"} if provider == "CohereLLM" else {}
    llm = cls(model="m", api_key="key", **url)
    llm.load()
    client = llm.client
    exits: list[tuple[object, ...]] = []
    leave = type(client).__aexit__

    async def recording_aexit(self: object, *exc: object) -> object:
        exits.append(exc)
        return await leave(self, *exc)

    monkeypatch.setattr(type(client), "__aexit__", recording_aexit)
    llm.unload()
    await asyncio.sleep(0.1)  # the close runs as a task on this loop

    assert exits == [(None, None, None)]
