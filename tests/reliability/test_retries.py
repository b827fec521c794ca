"""The retry policy of AsyncLLM against real failures on the loopback server."""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

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


def free_port() -> int:
    """A port where nothing listens: bound by the OS, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def refused_llm(provider: str, url: str, **fields: Any) -> Any:
    """An LLM of `provider` pointed at `url`, through that provider's own SDK."""
    from potstill.llms import AnthropicLLM, CohereLLM, MistralLLM, OllamaLLM, OpenAILLM

    fields.setdefault("api_key", "test-key")
    builders = {
        "openai": lambda: OpenAILLM(model="m", base_url=f"{url}/v1", **fields),
        "anthropic": lambda: AnthropicLLM(model="m", base_url=url, **fields),
        "cohere": lambda: CohereLLM(model="m", base_url=url, **fields),
        "mistral": lambda: MistralLLM(model="m", endpoint=url, **fields),
        "ollama": lambda: OllamaLLM(model="m", host=url, **fields),
    }
    return builders[provider]()


@pytest.mark.parametrize("provider", ["openai", "anthropic", "cohere", "mistral", "ollama"])
def test_a_refused_connection_is_named_and_fails_fast(provider: str) -> None:
    # The SDKs call this "Request timed out" (openai's aiohttp transport), "Connection error"
    # or "All connection attempts failed"; with the default retries it took 10-25 s.
    url = f"http://127.0.0.1:{free_port()}"
    llm = refused_llm(provider, url)
    started = time.monotonic()
    result = ask(llm, "anyone there?")
    elapsed = time.monotonic() - started
    assert list(result) == [None]
    assert "connection refused" in result.errors[0]
    assert url in result.errors[0]
    assert "timed out" not in result.errors[0].lower()
    assert elapsed < 3, f"a refused connection took {elapsed:.1f} s to fail"


def test_a_refused_connection_is_not_retried_when_its_budget_is_zero() -> None:
    llm = refused_llm("openai", f"http://127.0.0.1:{free_port()}", refused_connection_retry_time=0)
    result = ask(llm, "anyone there?")
    assert "connection refused" in result.errors[0]
    assert (llm.usage.retries, llm.usage.failed_requests) == (0, 1)


def test_a_server_that_is_still_starting_is_waited_for_when_asked() -> None:
    port = free_port()
    server = FakeServer(port=port)
    starter = threading.Timer(0.8, server.start)
    starter.start()
    try:
        llm = refused_llm(
            "openai",
            f"http://127.0.0.1:{port}",
            max_retries=100,
            retry_backoff=0.05,
            refused_connection_retry_time=30,
        )
        result = ask(llm, "q1")
    finally:
        starter.join()
        server.stop()
    assert list(result) == ["Echo: q1"]
    assert llm.usage.retries >= 1


def test_a_real_timeout_is_still_reported_as_a_timeout() -> None:
    # A socket that accepts connections (the kernel completes the handshake) and never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        llm = refused_llm("openai", url, max_retries=0, timeout=0.3)
        result = ask(llm, "anyone there?")
    assert list(result) == [None]
    assert "Timeout" in result.errors[0]
    assert "refused" not in result.errors[0]
    assert url in result.errors[0]
