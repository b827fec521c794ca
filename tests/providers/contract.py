"""Checks every hosted provider must pass, shared by the per-provider test files.

Each check drives a real provider class (its real SDK over real HTTP) against the loopback
server and asserts on values: what the server received and what came back. The checks take
an LLM that is not loaded yet; they configure it for the check, then load it with `loaded`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any, Optional, TypeVar

import pytest
from tests.fake_server import FakeServer, RecordedRequest

from potstill.errors import PotstillUserError
from potstill.llms import AsyncLLM
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration

AsyncLLMType = TypeVar("AsyncLLMType", bound=AsyncLLM)
LLMFactory = Callable[..., AsyncLLM]

SPAIN = "What's the capital of Spain?"
MADRID = "The capital of Spain is Madrid."
FRANCE = "What's the capital of France?"
PARIS = "The capital of France is Paris."
HELLO = "hello"
HELLO_ANSWER = "Hello! How can I help you today?"
# A key that must never be shown; the server is configured to require it where needed.
SECRET = "sk-potstill-canary-7f3a9c0e"
WRONG_SECRET = "sk-potstill-wrong-4b1d22aa"


def chat(text: str, system: Optional[str] = None) -> list[dict[str, str]]:
    """A conversation of an optional system prompt and one user message."""
    messages = [{"role": "user", "content": text}]
    if system is not None:
        messages.insert(0, {"role": "system", "content": system})
    return messages


def samples(answer: str, n: int) -> list[str]:
    """The `n` choices the loopback server gives for `answer` through a native `n`."""
    return [answer] + [f"{answer} (sample {index})" for index in range(1, n)]


def multi_turn() -> list[dict[str, str]]:
    """A new multi-turn conversation with a system prompt, ending with `SPAIN`.

    Its contents count 2 + 1 + 1 + 5 whitespace tokens (system, user, assistant, user).
    """
    return [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": SPAIN},
    ]


def received(server: FakeServer, provider: str, marker: str = "") -> list[RecordedRequest]:
    """The requests `provider` served whose body mentions `marker` (all when empty)."""
    return [
        request
        for request in server.requests
        if request.provider == provider and marker in json.dumps(request.body)
    ]


def bearer(request: RecordedRequest) -> str:
    """The bearer token a recorded request carried in its `Authorization` header."""
    return request.headers["authorization"].removeprefix("Bearer ")


# LLMs built or loaded by a test, unloaded (clients closed) after it by `conftest.py`.
_CREATED: list[AsyncLLM] = []


def tracked(llm: AsyncLLMType) -> AsyncLLMType:
    """Remembers an LLM so that `unload_all` closes its SDK clients after the test."""
    if not any(llm is known for known in _CREATED):
        _CREATED.append(llm)
    return llm


def loaded(llm: AsyncLLMType) -> AsyncLLMType:
    """Loads the LLM and returns it; it is unloaded when the test ends."""
    llm.load()
    return tracked(llm)


def unload_all() -> None:
    """Unloads every LLM given to `tracked` or `loaded` (closes their SDK clients)."""
    while _CREATED:
        _CREATED.pop().unload()


def check_missing_key(factory: LLMFactory, env_var: str) -> None:
    """`load()` fails naming the env var when neither `api_key` nor the env var is set.

    Args:
        factory: builds the LLM from keyword arguments (here `api_key=None`).
        env_var: the env var the error must name.
    """
    llm = factory(api_key=None)

    with pytest.raises(PotstillUserError) as info:
        llm.load()

    assert env_var in str(info.value)
    assert "api_key" in str(info.value)
    assert not llm.is_loaded


def check_empty_answer(llm: AsyncLLM, reason: str) -> None:
    """An answer without content is `None` with `reason` in its error; the next input of
    the batch still gets its answer."""
    loaded(llm)

    outputs = llm.generate([chat("[[empty]] nothing"), chat(SPAIN)])

    assert outputs == [[None], [MADRID]]
    assert reason in outputs[0].errors[0], outputs[0].errors[0]


def check_num_generations(llm: AsyncLLM, server: FakeServer, provider: str) -> None:
    """`num_generations=3` gives 3 outputs per input through 3 parallel requests (the
    provider has no `n`), with the usage of each request recorded."""
    loaded(llm)

    outputs = llm.generate([chat(SPAIN), chat(HELLO)], num_generations=3)

    assert outputs == [[MADRID] * 3, [HELLO_ANSWER] * 3]
    assert len(received(server, provider, "Spain")) == 3
    assert len(received(server, provider, HELLO)) == 3
    assert all(request.body.get("n", 1) == 1 for request in received(server, provider))
    assert outputs[0].input_tokens == [5, 5, 5], "each request reports its own usage"
    assert all(tokens is not None and tokens > 0 for tokens in outputs[0].output_tokens)
    assert llm.usage.requests == 6
    assert llm.usage.output_tokens == 3 * 6 + 3 * 7  # whitespace tokens of both answers


def check_native_num_generations(llm: AsyncLLM, server: FakeServer, provider: str) -> None:
    """`num_generations=3` gives 3 different outputs per input through one request with
    `n=3`; the request's usage sits on the first generation."""
    loaded(llm)

    outputs = llm.generate([chat(SPAIN), chat(HELLO)], num_generations=3)

    assert outputs == [samples(MADRID, 3), samples(HELLO_ANSWER, 3)]
    assert [request.body["n"] for request in received(server, provider)] == [3, 3]
    assert outputs[0].input_tokens == [5, None, None]
    assert outputs[0].usage.output_tokens == 6 + 8 + 8
    assert llm.usage.requests == 2
    assert llm.usage.input_tokens == 5 + 1


def check_failures_are_isolated(llm: AsyncLLM, server: FakeServer, provider: str) -> None:
    """An HTTP error, a malformed body, a dropped connection and a timeout each give `None`
    for their own generation only; the other inputs still get their answers."""
    llm.max_retries = 0
    llm.timeout = 1
    loaded(llm)
    inputs = [
        chat(SPAIN),
        chat("[[status=500]] server error"),
        chat("[[malformed]] garbled body"),
        chat("[[drop]] dropped connection"),
        chat("[[delay=1.3]] too slow"),
        chat(HELLO),
    ]

    outputs = llm.generate(inputs)

    assert outputs == [[MADRID], [None], [None], [None], [None], [HELLO_ANSWER]]
    assert outputs[0].errors == [None]
    assert outputs[5].errors == [None]
    for output in outputs[1:5]:
        assert output.errors[0], "a failed generation keeps its error"
    assert "500" in outputs[1].errors[0]
    assert "timeout" in outputs[4].errors[0].lower(), outputs[4].errors[0]
    assert llm.usage.failed_requests == 4
    assert len(received(server, provider, "server error")) == 1, "no retry with max_retries=0"
    # The server finishes the slow request after the client gave up; wait for it so that it
    # is not recorded during the next test.
    deadline = time.monotonic() + 5
    while not received(server, provider, "too slow") and time.monotonic() < deadline:
        time.sleep(0.02)


def check_retry_succeeds(llm: AsyncLLM, server: FakeServer, provider: str) -> None:
    """A 503 on the first attempt is retried by `AsyncLLM` (the SDK's retries are off)."""
    llm.max_retries = 2
    loaded(llm)

    outputs = llm.generate([chat(f"[[fail_first=1 status=503 retry_after=0.01]] {SPAIN}")])

    assert outputs == [[MADRID]]
    attempts = received(server, provider, "fail_first")
    assert [request.status for request in attempts] == [503, 200]
    assert llm.usage.retries == 1


def check_secret_never_shown(
    make: Callable[[str], AsyncLLM],
    server: FakeServer,
    caplog: pytest.LogCaptureFixture,
    show_key: Callable[[RecordedRequest], Optional[str]],
    refused_error: str = "401",
) -> None:
    """The key reaches the server, but never appears in `dump()`, repr, logs or errors.

    Args:
        make: builds the LLM with a given key (the check sets `max_retries=0`).
        server: the loopback server (configured here to require `SECRET`).
        caplog: pytest's log capture.
        show_key: where the provider sends the key, read from a recorded request.
        refused_error: what the error of a request with the wrong key says.
    """
    server.configure(require_api_key=SECRET)
    caplog.set_level(logging.DEBUG)
    llm, wrong = make(SECRET), make(WRONG_SECRET)
    for each in (llm, wrong):
        each.max_retries = 0
        loaded(each)

    ok = llm.generate([chat(SPAIN)])
    failed = llm.generate([chat("[[status=500]] boom")])
    refused = wrong.generate([chat(SPAIN)])

    assert ok == [[MADRID]], "the right key is accepted"
    assert show_key(received(server, server.requests[0].provider, "Spain")[0]) == SECRET
    assert failed == [[None]]
    assert refused == [[None]]
    assert refused_error in refused[0].errors[0], refused[0].errors[0]
    shown = [
        json.dumps(llm.dump()),
        llm.model_dump_json(),
        repr(llm),
        str(llm),
        repr(wrong),
        json.dumps(wrong.dump()),
        *failed[0].errors,
        *refused[0].errors,
        caplog.text,
    ]
    for text in shown:
        assert SECRET not in text
        assert WRONG_SECRET not in text
    assert "api_key" not in llm.dump()


def run_text_generation(
    llm: AsyncLLM,
    instructions: list[str],
    params: Optional[dict[str, Any]] = None,
    num_generations: int = 1,
    system_prompt: Optional[str] = None,
) -> list[dict[str, Any]]:
    """Runs `LoadDataFromDicts >> TextGeneration(llm)` in a `Pipeline`; returns its rows.

    Args:
        llm: the LLM (not loaded: the pipeline loads it).
        instructions: one row per instruction.
        params: the task's `llm` runtime parameters, as given to `Pipeline.run`.
        num_generations: the task's `num_generations`.
        system_prompt: the task's system prompt.

    Returns:
        The rows of the output dataset.
    """
    with Pipeline(name=f"providers-{type(llm).__name__.lower()}") as pipeline:
        data = LoadDataFromDicts(data=[{"instruction": text} for text in instructions])
        task = TextGeneration(llm=llm, num_generations=num_generations, system_prompt=system_prompt)
        data >> task
    distiset = pipeline.run(params={task.name: {"llm": params or {}}}, use_cache=False)
    return list(distiset["default"]["train"])


def check_pipeline(llm: AsyncLLM, params: dict[str, Any], native_n: bool) -> list[dict[str, Any]]:
    """Runs the LLM in `TextGeneration` in a `Pipeline` with 2 generations per row and a
    system prompt; checks the rows and the usage written to `potstill_metadata`.

    Args:
        llm: the LLM (not loaded: the pipeline loads it).
        params: the task's `llm` runtime parameters, as given to `Pipeline.run`.
        native_n: whether the LLM asks for both generations in one request (`n`).

    Returns:
        The rows, for provider-specific checks of what the server received.
    """
    rows = run_text_generation(
        llm, [SPAIN, HELLO], params=params, num_generations=2, system_prompt="Be brief."
    )

    expected = (
        samples(MADRID, 2) + samples(HELLO_ANSWER, 2)
        if native_n
        else [MADRID, MADRID, HELLO_ANSWER, HELLO_ANSWER]
    )
    assert [row["generation"] for row in rows] == expected
    assert {row["model_name"] for row in rows} == {llm.model_name}
    statistics = [row["potstill_metadata"]["statistics_text_generation_0"] for row in rows]
    # A native `n` request reports its usage once, on its first generation.
    counted = statistics[::2] if native_n else statistics
    assert all(stat["output_tokens"] and stat["output_tokens"] > 0 for stat in counted)
    return rows
