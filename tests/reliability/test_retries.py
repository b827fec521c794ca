"""The retry policy of AsyncLLM against real failures on the loopback server."""

from __future__ import annotations

import logging
import time

import pytest
from tests.fake_server import FakeServer
from tests.reliability.helpers import make_llm


def ask(llm, text: str):
    llm.load()
    try:
        return llm.generate_outputs([[{"role": "user", "content": text}]])[0]
    finally:
        llm.unload()


def attempts(server: FakeServer) -> list:
    return [r for r in server.requests if r.provider == "openai"]


def test_transient_errors_are_retried_until_success(fake_server: FakeServer) -> None:
    llm = make_llm(fake_server, max_retries=3)
    result = ask(llm, "greetings [[fail_first=2 status=503]]")
    assert list(result) == ["Echo: greetings"]
    assert [r.status for r in attempts(fake_server)] == [503, 503, 200]
    assert llm.usage.retries == 2
    assert llm.usage.failed_requests == 0


def test_sdk_retries_are_off_so_attempts_are_not_multiplied(fake_server: FakeServer) -> None:
    llm = make_llm(fake_server, max_retries=2)
    result = ask(llm, "always [[status=500]]")
    assert list(result) == [None]
    # 1 attempt + 2 retries, all made by potstill: the SDK retried nothing on its own.
    assert len(attempts(fake_server)) == 3
    assert "HTTP 500" in result.errors[0] or "500" in result.errors[0]


def test_non_retryable_errors_fail_at_once(fake_server: FakeServer) -> None:
    llm = make_llm(fake_server, max_retries=5)
    result = ask(llm, "bad [[status=400]]")
    assert list(result) == [None]
    assert len(attempts(fake_server)) == 1
    assert llm.usage.retries == 0


def test_retry_after_is_honoured(fake_server: FakeServer) -> None:
    llm = make_llm(fake_server, max_retries=2)
    result = ask(llm, "slow down [[fail_first=1 status=429 retry_after=0.6]]")
    assert list(result) == ["Echo: slow down"]
    first, second = attempts(fake_server)
    assert first.status == 429 and second.status == 200
    assert second.start - first.end >= 0.55


def test_a_429_pauses_the_other_requests_of_the_llm(fake_server: FakeServer) -> None:
    llm = make_llm(fake_server, max_retries=2, max_concurrent_requests=1)
    llm.load()
    try:
        llm.generate_outputs(
            [
                [{"role": "user", "content": "first [[fail_first=1 status=429 retry_after=0.5]]"}],
                [{"role": "user", "content": "second"}],
            ]
        )
    finally:
        llm.unload()
    by_content = {
        r.body["messages"][0]["content"]: r for r in attempts(fake_server) if r.status == 200
    }
    first_429 = next(r for r in attempts(fake_server) if r.status == 429)
    second = by_content["second"]
    # "second" waited for the cooldown that "first"'s 429 started.
    assert second.start - first_429.end >= 0.45


def test_the_retry_time_budget_stops_retrying(fake_server: FakeServer) -> None:
    llm = make_llm(fake_server, max_retries=10, max_retry_time=0.5)
    started = time.monotonic()
    result = ask(llm, "never [[status=429 retry_after=5]]")
    assert list(result) == [None]
    assert time.monotonic() - started < 3
    assert len(attempts(fake_server)) == 1


def test_timeouts_are_retried_and_then_give_none(fake_server: FakeServer) -> None:
    llm = make_llm(fake_server, max_retries=1, timeout=0.3)
    result = ask(llm, "late [[delay=2]]")
    assert list(result) == [None]
    assert "Timeout" in result.errors[0]
    assert (llm.usage.retries, llm.usage.failed_requests) == (1, 1)
    deadline = time.monotonic() + 5  # the server records a request when it answers
    while len(attempts(fake_server)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(attempts(fake_server)) == 2


@pytest.mark.parametrize("marker", ["drop", "malformed"])
def test_dropped_connections_and_malformed_bodies_are_retried(
    fake_server: FakeServer, marker: str
) -> None:
    llm = make_llm(fake_server, max_retries=0)
    assert list(ask(llm, f"broken [[{marker}]]")) == [None]
    fake_server.reset()
    llm = make_llm(fake_server, max_retries=3)
    # The fault hits every attempt of this content, so all 4 attempts are made.
    assert list(ask(llm, f"broken [[{marker}]]")) == [None]
    assert len(attempts(fake_server)) == 4


def test_the_final_error_is_logged_with_the_row_index(
    fake_server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    llm = make_llm(fake_server, max_retries=0)
    llm.load()
    try:
        with caplog.at_level(logging.WARNING, logger="potstill"):
            outputs = llm.generate_outputs(
                [
                    [{"role": "user", "content": "fine"}],
                    [{"role": "user", "content": "broken [[status=500]]"}],
                ]
            )
    finally:
        llm.unload()
    assert [list(o) for o in outputs] == [["Echo: fine"], [None]]
    assert any("row 1" in record.getMessage() for record in caplog.records)


def test_an_unreachable_endpoint_is_named_in_the_error() -> None:
    from potstill.llms import OpenAILLM

    llm = OpenAILLM(model="m", base_url="http://127.0.0.1:9/v1", api_key="k", max_retries=0)
    result = ask(llm, "anyone there?")
    assert list(result) == [None]
    assert "http://127.0.0.1:9/v1" in result.errors[0]
