"""Tests of the fake LLM API server, driven through the real ``openai`` SDK."""

from __future__ import annotations

import asyncio
import json
import queue
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pydantic
import pytest
from tests.fake_server import FakeServer, Fault, ServerState, answer_for, count_tokens

REPO_ROOT = Path(__file__).resolve().parents[2]
SPAIN = "What's the capital of Spain?"
MODEL = "gpt-fake"


@pytest.fixture(scope="module")
def module_server() -> Iterator[FakeServer]:
    """One server for the whole module; tests get it reset (see ``server``)."""
    with FakeServer() as server:
        yield server


@pytest.fixture
def server(module_server: FakeServer) -> FakeServer:
    """The module server with recordings cleared and default configuration."""
    module_server.reset()
    return module_server


@pytest.fixture
def client(server: FakeServer) -> Iterator[openai.OpenAI]:
    """A sync OpenAI client without retries."""
    with openai.OpenAI(base_url=server.openai_base_url, api_key="test-key", max_retries=0) as c:
        yield c


def ask(client: openai.OpenAI, text: str, **kwargs: Any) -> Any:
    """Send one user message and return the ChatCompletion."""
    return client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": text}], **kwargs
    )


def http_json(url: str, payload: Any = None, method: str | None = None) -> tuple[int, Any]:
    """Make a raw HTTP request with JSON in and out (for control and validation checks)."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(
        url,
        data=data,
        method=method or ("POST" if data is not None else "GET"),
        headers={"Content-Type": "application/json", "Authorization": "Bearer test-key"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


# -- success bodies ---------------------------------------------------------------------


def test_plain_answer_for_known_question(server: FakeServer, client: openai.OpenAI) -> None:
    completion = ask(client, SPAIN)

    assert isinstance(completion, openai.types.chat.ChatCompletion)
    assert completion.choices[0].message.content == "The capital of Spain is Madrid."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == MODEL
    assert completion.object == "chat.completion"
    [record] = server.requests
    assert (record.provider, record.method, record.path) == (
        "openai",
        "POST",
        "/v1/chat/completions",
    )
    assert record.status == 200
    assert record.headers["authorization"] == "Bearer test-key"
    assert record.body["messages"] == [{"role": "user", "content": SPAIN}]


def test_unknown_question_is_echoed_without_markers(client: openai.OpenAI) -> None:
    completion = ask(client, "Tell me  a [[delay=0]] story")

    assert completion.choices[0].message.content == "Echo: Tell me a story"


def test_base_url_without_v1_prefix(server: FakeServer) -> None:
    with openai.OpenAI(base_url=server.url, api_key="test-key", max_retries=0) as c:
        completion = ask(c, SPAIN)

    assert completion.choices[0].message.content == "The capital of Spain is Madrid."
    assert server.requests[0].path == "/chat/completions"


def test_n_gives_distinct_choices(client: openai.OpenAI) -> None:
    completion = ask(client, SPAIN, n=3)

    assert [c.index for c in completion.choices] == [0, 1, 2]
    contents = [c.message.content for c in completion.choices]
    assert len(set(contents)) == 3
    assert contents[0] == "The capital of Spain is Madrid."


def test_usage_counts_whitespace_tokens(client: openai.OpenAI) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": SPAIN},
    ]
    completion = client.chat.completions.create(model=MODEL, messages=messages, n=2)

    expected_prompt = count_tokens("You are terse.") + count_tokens(SPAIN)
    expected_completion = sum(count_tokens(c.message.content) for c in completion.choices)
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == expected_prompt == 8
    assert completion.usage.completion_tokens == expected_completion == 6 + 8
    assert completion.usage.total_tokens == expected_prompt + expected_completion


@pytest.mark.parametrize("limit_param", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_truncates(client: openai.OpenAI, limit_param: str) -> None:
    truncated = ask(client, SPAIN, **{limit_param: 3})
    untouched = ask(client, SPAIN, **{limit_param: 6})

    assert truncated.choices[0].message.content == "The capital of"
    assert truncated.choices[0].finish_reason == "length"
    assert truncated.usage.completion_tokens == 3
    assert untouched.choices[0].message.content == "The capital of Spain is Madrid."
    assert untouched.choices[0].finish_reason == "stop"


def test_max_tokens_truncation_can_be_disabled(server: FakeServer, client: openai.OpenAI) -> None:
    server.configure(max_tokens_truncates=False)

    completion = ask(client, SPAIN, max_tokens=2)

    assert completion.choices[0].message.content == "The capital of Spain is Madrid."


@pytest.mark.parametrize("stop", [" is", [" nothing", "Spain"]])
def test_stop_cuts_at_first_stop_string(client: openai.OpenAI, stop: Any) -> None:
    completion = ask(client, SPAIN, stop=stop)

    expected = "The capital of Spain" if stop == " is" else "The capital of "
    assert completion.choices[0].message.content == expected
    assert completion.choices[0].finish_reason == "stop"


def test_sampling_params_are_recorded(server: FakeServer, client: openai.OpenAI) -> None:
    ask(client, SPAIN, temperature=0.7, top_p=0.9, seed=42, frequency_penalty=0.5)

    body = server.requests[0].body
    assert (body["temperature"], body["top_p"], body["seed"], body["frequency_penalty"]) == (
        0.7,
        0.9,
        42,
        0.5,
    )


def test_json_object_response_format(client: openai.OpenAI) -> None:
    completion = ask(client, SPAIN, response_format={"type": "json_object"})

    assert json.loads(completion.choices[0].message.content) == {
        "answer": "The capital of Spain is Madrid."
    }


def test_json_schema_response_format_parses_into_model(client: openai.OpenAI) -> None:
    class City(pydantic.BaseModel):
        name: str
        population: int
        tags: list[str]

    completion = client.chat.completions.parse(
        model=MODEL, messages=[{"role": "user", "content": SPAIN}], response_format=City
    )

    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, City)
    assert parsed.name == "The capital of Spain is Madrid."


def test_logprobs_one_entry_per_token(client: openai.OpenAI) -> None:
    completion = ask(client, SPAIN, logprobs=True, top_logprobs=2)

    entries = completion.choices[0].logprobs.content
    assert "".join(e.token for e in entries) == "The capital of Spain is Madrid."
    assert len(entries) == 6
    assert all(e.logprob < 0 and len(e.top_logprobs) == 2 for e in entries)
    again = ask(client, SPAIN, logprobs=True, top_logprobs=2)
    assert [e.logprob for e in again.choices[0].logprobs.content] == [e.logprob for e in entries]


def test_answer_for_helpers() -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "hi [[drop]] there"}]}]

    assert answer_for(messages) == "Echo: hi there"
    assert answer_for(messages, 2) == "Echo: hi there (sample 2)"
    assert json.loads(answer_for(messages, json_mode=True)) == {"answer": "Echo: hi there"}
    assert count_tokens("  a b\nc ") == 3


# -- validation and auth ------------------------------------------------------------------


def test_wrong_api_key_is_rejected(server: FakeServer) -> None:
    with openai.OpenAI(base_url=server.openai_base_url, api_key="nope", max_retries=0) as c:
        with pytest.raises(openai.AuthenticationError) as info:
            ask(c, SPAIN)

    assert info.value.code == "invalid_api_key"
    assert server.requests[0].status == 401


def test_any_key_accepted_when_not_required(server: FakeServer) -> None:
    server.configure(require_api_key=None)
    with openai.OpenAI(base_url=server.openai_base_url, api_key="nope", max_retries=0) as c:
        assert ask(c, SPAIN).choices[0].message.content == "The capital of Spain is Madrid."


def test_invalid_role_gives_openai_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=[{"role": "wizard", "content": "hi"}])

    assert info.value.param == "messages[0].role"
    assert info.value.type == "invalid_request_error"


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
        ({"model": MODEL}, "messages"),
        ({"model": MODEL, "messages": []}, "messages"),
        ({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "n": 0}, "n"),
    ],
)
def test_missing_or_bad_fields_give_openai_400(
    server: FakeServer, payload: dict[str, Any], param: str
) -> None:
    status, body = http_json(f"{server.openai_base_url}/chat/completions", payload)

    assert status == 400
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["param"] == param


def test_configure_rejects_unknown_field(server: FakeServer) -> None:
    with pytest.raises(TypeError):
        server.configure(latency=1.0)
    with pytest.raises(TypeError):
        ServerState(nonsense=True)


# -- markers -----------------------------------------------------------------------------


def test_status_marker(server: FakeServer, client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        ask(client, "boom [[status=500]]")

    assert info.value.status_code == 500
    assert info.value.type == "server_error"
    assert server.requests[0].status == 500


@pytest.mark.parametrize(("retry_after", "header"), [("1.5", "1.5"), ("2", "2")])
def test_rate_limit_marker_sets_retry_after(
    client: openai.OpenAI, retry_after: str, header: str
) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        ask(client, f"[[status=429 retry_after={retry_after}]] slow down")

    assert info.value.response.headers["retry-after"] == header


def test_fail_first_then_succeed(server: FakeServer, client: openai.OpenAI) -> None:
    prompt = "[[fail_first=2 status=503]] flaky"
    for _ in range(2):
        with pytest.raises(openai.InternalServerError) as info:
            ask(client, prompt)
        assert info.value.status_code == 503

    assert ask(client, prompt).choices[0].message.content == "Echo: flaky"
    assert [r.attempt for r in server.requests] == [0, 1, 2]
    assert server.state.attempts(prompt) == 3


def test_fail_first_is_survived_by_sdk_retries(server: FakeServer) -> None:
    prompt = "[[fail_first=2 status=503 retry_after=0.01]] flaky"
    with openai.OpenAI(base_url=server.openai_base_url, api_key="test-key", max_retries=2) as c:
        completion = ask(c, prompt)

    assert completion.choices[0].message.content == "Echo: flaky"
    assert [r.status for r in server.requests] == [503, 503, 200]
    assert [r.headers["x-stainless-retry-count"] for r in server.requests] == ["0", "1", "2"]


def test_drop_marker_closes_connection(server: FakeServer, client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIConnectionError):
        ask(client, "[[drop]] bye")

    [record] = server.requests
    assert (record.status, record.outcome) == (None, "drop")
    # The client recovers on a new connection.
    assert ask(client, SPAIN).choices[0].message.content == "The capital of Spain is Madrid."


def test_malformed_marker_breaks_parsing(client: openai.OpenAI) -> None:
    with pytest.raises(Exception) as info:  # the SDK lets json errors through
        ask(client, "[[malformed]] garbage")

    assert not isinstance(info.value, openai.APIStatusError)


def test_empty_marker_gives_null_content(client: openai.OpenAI) -> None:
    completion = ask(client, "[[empty]] nothing")

    assert completion.choices[0].message.content is None
    assert completion.usage.completion_tokens == 0


def test_delay_marker(server: FakeServer, client: openai.OpenAI) -> None:
    started = time.monotonic()
    ask(client, "[[delay=0.3]] wait")
    delayed = time.monotonic() - started
    started = time.monotonic()
    ask(client, "no wait")
    quick = time.monotonic() - started

    assert delayed >= 0.3
    assert quick < 0.2
    assert server.requests[0].duration >= 0.3


def test_invalid_marker_value_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        ask(client, "[[status=abc]]")


# -- global faults -------------------------------------------------------------------------


FAULTS = [Fault(status=503, ratio=0.3), Fault(status=0, ratio=0.1, kind="drop")]


def run_fault_round(server: FakeServer, client: openai.OpenAI, seed: int) -> list[str]:
    """Send 40 distinct prompts twice each and return the outcome labels."""
    server.reset()
    server.configure(faults=FAULTS, seed=seed)
    outcomes = []
    for i in range(40):
        for _ in range(2):
            try:
                ask(client, f"question {i}")
                outcomes.append("ok")
            except openai.InternalServerError:
                outcomes.append("503")
            except openai.APIConnectionError:
                outcomes.append("drop")
    return outcomes


def test_global_faults_are_deterministic(server: FakeServer, client: openai.OpenAI) -> None:
    first = run_fault_round(server, client, seed=7)
    second = run_fault_round(server, client, seed=7)
    other_seed = run_fault_round(server, client, seed=8)

    assert first == second
    assert first != other_seed
    assert {"ok", "503", "drop"} <= set(first)
    assert 10 <= first.count("503") <= 40


@pytest.mark.asyncio
async def test_global_faults_ignore_interleaving(server: FakeServer) -> None:
    server.configure(faults=[Fault(status=500, ratio=0.5)], seed=3)
    prompts = [f"concurrent {i}" for i in range(30)]

    async with openai.AsyncOpenAI(
        base_url=server.openai_base_url, api_key="test-key", max_retries=0
    ) as c:

        async def outcome(prompt: str) -> str:
            try:
                await c.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": prompt}]
                )
                return "ok"
            except openai.InternalServerError:
                return "500"

        concurrent = await asyncio.gather(*(outcome(p) for p in prompts))
        server.reset()
        server.configure(faults=[Fault(status=500, ratio=0.5)], seed=3)
        sequential = [await outcome(p) for p in reversed(prompts)][::-1]

    assert list(concurrent) == sequential
    assert "ok" in sequential and "500" in sequential


def test_fault_ratio_zero_and_slow_kind(server: FakeServer, client: openai.OpenAI) -> None:
    server.configure(faults=[{"status": 500, "ratio": 1.0, "kind": "slow", "delay_s": 0.2}])
    started = time.monotonic()
    assert ask(client, SPAIN).choices[0].message.content == "The capital of Spain is Madrid."
    assert time.monotonic() - started >= 0.2

    server.configure(faults=[Fault(status=500, ratio=0.0)])
    assert all(ask(client, f"q{i}").choices for i in range(10))


# -- concurrency, rate windows, latency -----------------------------------------------------


@pytest.mark.asyncio
async def test_peak_concurrency_with_latency(server: FakeServer) -> None:
    server.configure(latency_s=0.2)
    async with openai.AsyncOpenAI(
        base_url=server.openai_base_url, api_key="test-key", max_retries=0
    ) as c:
        started = time.monotonic()
        results = await asyncio.gather(
            *(
                c.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": f"q {i}"}]
                )
                for i in range(20)
            )
        )
        elapsed = time.monotonic() - started

    assert len(results) == 20
    assert server.state.peak_concurrency == 20
    assert elapsed < 1.0
    assert all(r.duration >= 0.2 for r in server.requests)


@pytest.mark.asyncio
async def test_200_concurrent_connections(server: FakeServer) -> None:
    server.configure(latency_s=0.3)
    payload = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": "Bearer test-key"}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> int:
            async with session.post(
                f"{server.openai_base_url}/chat/completions", json=payload, headers=headers
            ) as response:
                await response.read()
                return response.status

        started = time.monotonic()
        statuses = await asyncio.gather(*(one() for _ in range(200)))
        elapsed = time.monotonic() - started

    assert statuses == [200] * 200
    assert server.state.peak_concurrency == 200
    assert elapsed < 1.5


def test_max_requests_in_window(server: FakeServer, client: openai.OpenAI) -> None:
    for i in range(4):
        ask(client, f"burst one {i}")
    time.sleep(0.5)
    for i in range(3):
        ask(client, f"burst two {i}")

    assert server.state.max_requests_in_window(0.3) == 4
    assert server.state.max_requests_in_window(60) == 7
    assert len(server.state.request_times) == 7
    with pytest.raises(ValueError):
        server.state.max_requests_in_window(0)


# -- control API and subprocess mode -------------------------------------------------------


def test_control_endpoints(server: FakeServer, client: openai.OpenAI) -> None:
    status, config = http_json(
        f"{server.url}/_control/config",
        {"latency_s": 0.05, "faults": [{"status": 503, "ratio": 0.25}]},
    )
    assert status == 200
    assert server.state.latency_s == 0.05
    assert server.state.faults == [Fault(status=503, ratio=0.25)]
    assert config["faults"][0]["status"] == 503
    assert http_json(f"{server.url}/_control/config", {"bogus": 1})[0] == 400

    server.configure(faults=[])
    ask(client, SPAIN)
    _, stats = http_json(f"{server.url}/_control/stats?window=1")
    assert stats["request_count"] == 1
    assert stats["peak_concurrency"] == 1
    assert stats["max_requests_in_window"] == 1
    _, recorded = http_json(f"{server.url}/_control/requests")
    assert recorded[0]["path"] == "/v1/chat/completions"
    assert recorded[0]["body"]["messages"][0]["content"] == SPAIN

    assert http_json(f"{server.url}/_control/reset", {})[0] == 200
    assert server.requests == []
    assert server.state.latency_s == 0.0


def read_line_with_timeout(stream: Any, timeout_s: float) -> str:
    """Read one line from a pipe, failing after ``timeout_s``."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    return lines.get(timeout=timeout_s)


def test_subprocess_mode() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_server", "--port", "0", "--latency", "0.01"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = read_line_with_timeout(proc.stdout, 15)
        assert line.startswith("FAKE_SERVER_URL=http://127.0.0.1:")
        url = line.strip().split("=", 1)[1]
        with openai.OpenAI(base_url=f"{url}/v1", api_key="test-key", max_retries=0) as c:
            completion = ask(c, SPAIN)
        assert completion.choices[0].message.content == "The capital of Spain is Madrid."
        _, stats = http_json(f"{url}/_control/stats")
        assert stats["request_count"] == 1
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
