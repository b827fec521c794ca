"""`Retry-After` cannot freeze a run: long waits are capped, malformed ones ignored."""

from __future__ import annotations

import asyncio
import time

import pytest
from tests.fake_server import FakeServer, Fault
from tests.reliability.helpers import make_llm

from potstill.llms.limits import MAX_COOLDOWN_S, RateLimiter
from potstill.llms.retry import classify, retry_after


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


async def generate(llm, inputs, timeout: float = 15.0):
    """`agenerate_outputs` that fails the test instead of hanging on a frozen limiter."""
    llm.load()
    try:
        return await asyncio.wait_for(llm.agenerate_outputs(inputs), timeout)
    finally:
        llm.unload()


@pytest.mark.asyncio
async def test_an_hour_long_retry_after_fails_that_request_alone(fake_server: FakeServer) -> None:
    # One request at a time: the others queue behind the one that gets the 429.
    llm = make_llm(fake_server, max_concurrent_requests=1)
    inputs = [chat("stuck [[status=429 retry_after=3600]]")] + [chat(f"q{i}") for i in range(5)]

    start = time.monotonic()
    outputs = await generate(llm, inputs)
    elapsed = time.monotonic() - start

    assert list(outputs[0]) == [None]
    assert "Retry-After" in outputs[0].errors[0] and "max_retry_time" in outputs[0].errors[0]
    assert [list(output) for output in outputs[1:]] == [[f"Echo: q{i}"] for i in range(5)]
    assert elapsed < 5, f"the other requests were paused ({elapsed:.1f} s)"
    assert fake_server.state.attempts("stuck [[status=429 retry_after=3600]]") == 1


@pytest.mark.asyncio
async def test_a_few_long_retry_afters_do_not_stop_the_run(fake_server: FakeServer) -> None:
    fake_server.configure(faults=[Fault(status=429, ratio=0.05, retry_after=3600)], seed=3)
    llm = make_llm(fake_server, max_concurrent_requests=8)
    inputs = [chat(f"row {i}") for i in range(60)]

    start = time.monotonic()
    outputs = await generate(llm, inputs)
    elapsed = time.monotonic() - start

    failed = [index for index, output in enumerate(outputs) if output[0] is None]
    answered = [index for index, output in enumerate(outputs) if output[0] is not None]
    assert failed, "the seed gives some 429s"
    assert len(answered) == 60 - len(failed)
    assert all(outputs[i][0] == f"Echo: row {i}" for i in answered)
    assert len(fake_server.requests) == 60, "a request that cannot wait is not retried"
    assert elapsed < 5, f"the run was paused ({elapsed:.1f} s)"


@pytest.mark.asyncio
async def test_a_retry_after_within_the_budget_still_pauses_the_others(
    fake_server: FakeServer,
) -> None:
    llm = make_llm(fake_server, max_concurrent_requests=1, max_retry_time=5)
    inputs = [chat("first [[fail_first=1 status=429 retry_after=0.5]]"), chat("second")]

    outputs = await generate(llm, inputs)

    assert [list(output) for output in outputs] == [["Echo: first"], ["Echo: second"]]
    first_429 = next(r for r in fake_server.requests if r.status == 429)
    second = next(r for r in fake_server.requests if r.body["messages"][0]["content"] == "second")
    assert second.start - first_429.end >= 0.45


def test_the_shared_cooldown_is_capped() -> None:
    limiter = RateLimiter()

    limiter.cool_down(3600)

    assert limiter._cooldown_until - time.monotonic() <= MAX_COOLDOWN_S


@pytest.mark.asyncio
async def test_a_malformed_retry_after_counts_as_absent(fake_server: FakeServer) -> None:
    llm = make_llm(fake_server, max_retries=2)
    inputs = [chat("later [[fail_first=1 status=429 retry_after=soon]]"), chat("other")]

    outputs = await generate(llm, inputs)

    assert [list(output) for output in outputs] == [["Echo: later"], ["Echo: other"]]
    assert sorted(r.status for r in fake_server.requests) == [200, 200, 429]


class _Answer:
    def __init__(self, headers: dict[str, str]) -> None:
        self.status_code = 429
        self.headers = headers


class _RateLimited(Exception):
    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__("429")
        self.response = _Answer(headers)


@pytest.mark.parametrize(
    "headers",
    [
        {"retry-after": "soon"},
        {"retry-after": ""},
        {"retry-after": "nan"},
        {"retry-after": "inf"},
        {"retry-after-ms": "later"},
        {"retry-after": "Wed, 99 Foo 2015 07:28:00 GMT"},
    ],
)
def test_unreadable_retry_after_values_are_ignored(headers: dict[str, str]) -> None:
    decision = classify(_RateLimited(headers))

    assert decision.retry and decision.status == 429
    assert decision.wait is None


def test_readable_retry_after_values() -> None:
    assert retry_after(_RateLimited({"retry-after": "2"})) == 2.0
    assert retry_after(_RateLimited({"retry-after-ms": "1500"})) == 1.5
    assert retry_after(_RateLimited({"retry-after-ms": "x", "retry-after": "3"})) == 3.0
    assert retry_after(_RateLimited({"retry-after": "Wed, 21 Oct 2015 07:28:00 -0000"})) == 0.0
