"""Checks shared by the tests of the hosted providers (Anthropic, Cohere, Inference
Endpoints, Ollama, Vertex AI).

Each check drives a real provider class (its real SDK over real HTTP) against the loopback
server and asserts on values: what the server received and what came back.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, Optional, TypeVar

import pytest
from tests.fake_server import FakeServer, RecordedRequest

from potstill.llms import AsyncLLM
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration

AsyncLLMType = TypeVar("AsyncLLMType", bound=AsyncLLM)

SPAIN = "What's the capital of Spain?"
MADRID = "The capital of Spain is Madrid."
HELLO = "hello"
HELLO_ANSWER = "Hello! How can I help you today?"
SECRET = "potstill-canary-3c9e1f7a"
WRONG_SECRET = "potstill-wrong-8d2b4e61"

_CREATED: list[AsyncLLM] = []


def tracked(llm: AsyncLLMType) -> AsyncLLMType:
    """Remembers an LLM so that `unload_all` closes its SDK clients after the test."""
    _CREATED.append(llm)
    return llm


def unload_all() -> None:
    """Unloads every LLM built with `tracked` (closing their HTTP sessions)."""
    while _CREATED:
        _CREATED.pop().unload()


def chat(text: str, system: Optional[str] = None) -> list[dict[str, str]]:
    """A conversation of an optional system prompt and one user message."""
    messages = [{"role": "user", "content": text}]
    if system is not None:
        messages.insert(0, {"role": "system", "content": system})
    return messages


def served(server: FakeServer, provider: str, marker: str = "") -> list[RecordedRequest]:
    """The requests of `provider` whose body mentions `marker` (all when empty)."""
    return [
        request
        for request in server.requests
        if request.provider == provider and marker in json.dumps(request.body)
    ]


def check_num_generations(llm: AsyncLLM, server: FakeServer, provider: str) -> None:
    """`num_generations=3` gives 3 outputs per input through 3 parallel requests (the
    provider has no `n`), with the usage of each request recorded."""
    llm.load()

    outputs = llm.generate([chat(SPAIN), chat(HELLO)], num_generations=3)

    assert outputs == [[MADRID] * 3, [HELLO_ANSWER] * 3]
    assert len(served(server, provider, "Spain")) == 3
    assert len(served(server, provider, HELLO)) == 3
    assert all(tokens is not None and tokens > 0 for tokens in outputs[0].output_tokens)
    assert llm.usage.requests == 6
    assert llm.usage.output_tokens == 3 * 6 + 3 * 7  # whitespace tokens of both answers


def check_failures_are_isolated(llm: AsyncLLM, server: FakeServer, provider: str) -> None:
    """An HTTP error, a malformed body, a dropped connection and a timeout each give `None`
    for their own generation only; the other inputs still get their answers."""
    llm.max_retries = 0
    llm.timeout = 1
    llm.load()
    inputs = [
        chat(SPAIN),
        chat("[[status=500]] server error"),
        chat("[[malformed]] garbled body"),
        chat("[[drop]] dropped connection"),
        chat("[[delay=1.5]] too slow"),
        chat(HELLO),
    ]

    outputs = llm.generate(inputs)

    assert outputs == [[MADRID], [None], [None], [None], [None], [HELLO_ANSWER]]
    assert outputs[0].errors == [None]
    for output in outputs[1:5]:
        assert output.errors[0], "a failed generation keeps its error"
    assert "500" in outputs[1].errors[0]
    assert "timeout" in outputs[4].errors[0].lower(), outputs[4].errors[0]
    assert llm.usage.failed_requests == 4
    assert len(served(server, provider, "server error")) == 1, "no retry with max_retries=0"


def check_retry_succeeds(llm: AsyncLLM, server: FakeServer, provider: str) -> None:
    """A 503 on the first attempt is retried by `AsyncLLM` (the SDK's retries are off)."""
    llm.max_retries = 2
    llm.load()

    outputs = llm.generate([chat(f"[[fail_first=1 status=503 retry_after=0.01]] {SPAIN}")])

    assert outputs == [[MADRID]]
    attempts = served(server, provider, "fail_first")
    assert [request.status for request in attempts] == [503, 200]
    assert llm.usage.retries == 1


def check_secret_never_shown(
    make: Callable[[str], AsyncLLM],
    server: FakeServer,
    caplog: pytest.LogCaptureFixture,
    show_key: Callable[[RecordedRequest], Optional[str]],
) -> None:
    """The key reaches the server, but never appears in `dump()`, repr, logs or errors.

    Args:
        make: builds the LLM with a given key, `max_retries=0`.
        server: the loopback server (configured here to require `SECRET`).
        caplog: pytest's log capture.
        show_key: where the provider sends the key, read from a recorded request.
    """
    server.configure(require_api_key=SECRET)
    caplog.set_level(logging.DEBUG)
    llm, wrong = make(SECRET), make(WRONG_SECRET)
    llm.load()
    wrong.load()

    ok = llm.generate([chat(SPAIN)])
    failed = llm.generate([chat("[[status=500]] boom")])
    refused = wrong.generate([chat(SPAIN)])

    assert ok == [[MADRID]], "the right key is accepted"
    assert show_key(served(server, server.requests[0].provider, "Spain")[0]) == SECRET
    assert failed == [[None]]
    assert refused == [[None]]
    assert "401" in refused[0].errors[0]
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
    with Pipeline(name=f"hosted-{type(llm).__name__.lower()}") as pipeline:
        data = LoadDataFromDicts(data=[{"instruction": text} for text in instructions])
        task = TextGeneration(llm=llm, num_generations=num_generations, system_prompt=system_prompt)
        data >> task
    distiset = pipeline.run(params={task.name: {"llm": params or {}}}, use_cache=False)
    return list(distiset["default"]["train"])


def check_pipeline(llm: AsyncLLM, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Runs the LLM in `TextGeneration` in a `Pipeline` with 2 generations per row and a
    system prompt; checks the rows and the usage written to `potstill_metadata`.

    Returns:
        The rows, for provider-specific checks of what the server received.
    """
    rows = run_text_generation(
        llm, [SPAIN, HELLO], params=params, num_generations=2, system_prompt="Be brief."
    )

    assert [row["generation"] for row in rows] == [MADRID, MADRID, HELLO_ANSWER, HELLO_ANSWER]
    assert {row["model_name"] for row in rows} == {llm.model_name}
    statistics = [row["potstill_metadata"]["statistics_text_generation_0"] for row in rows]
    assert all(stat["output_tokens"] and stat["output_tokens"] > 0 for stat in statistics)
    return rows
