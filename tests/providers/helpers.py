"""Checks every hosted provider must pass, shared by the per-provider test files.

Each helper drives a real provider class (its real SDK, real HTTP) against the loopback
server and asserts on values: what the server received and what came back.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any, Optional

import pytest
from tests.fake_server import FakeServer, RecordedRequest

from potstill.errors import PotstillUserError
from potstill.llms import AsyncLLM
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration

SPAIN = "What's the capital of Spain?"
MADRID = "The capital of Spain is Madrid."
FRANCE = "What's the capital of France?"
PARIS = "The capital of France is Paris."
# A key that must never be shown; the server is configured to require it where needed.
SECRET = "sk-potstill-canary-7f3a9c0e"
WRONG_SECRET = "sk-potstill-wrong-4b1d22aa"

LLMFactory = Callable[..., AsyncLLM]


def chat(text: str, system: Optional[str] = None) -> list[dict[str, str]]:
    """A conversation of an optional system prompt and one user message."""
    messages = [{"role": "user", "content": text}]
    if system is not None:
        messages.insert(0, {"role": "system", "content": system})
    return messages


def received(server: FakeServer, provider: str, marker: str = "") -> list[RecordedRequest]:
    """The requests `provider` served whose body mentions `marker` (all when empty)."""
    return [
        request
        for request in server.requests
        if request.provider == provider and marker in json.dumps(request.body)
    ]


# LLMs loaded by `loaded()`, unloaded (clients closed) after each test by `conftest.py`.
LOADED: list[AsyncLLM] = []


def loaded(llm: AsyncLLM) -> AsyncLLM:
    """Loads the LLM and returns it; it is unloaded when the test ends."""
    llm.load()
    LOADED.append(llm)
    return llm


def unload_all() -> None:
    """Unloads every LLM `loaded()` returned (closes their SDK clients)."""
    while LOADED:
        LOADED.pop().unload()


def check_missing_key(factory: LLMFactory, env_var: str) -> None:
    """`load()` fails naming the env var when neither `api_key` nor the env var is set."""
    llm = factory(api_key=None)

    with pytest.raises(PotstillUserError) as info:
        llm.load()

    assert env_var in str(info.value)
    assert "api_key" in str(info.value)
    assert not llm.is_loaded


def check_failures_are_isolated(llm: AsyncLLM, server: FakeServer, provider: str) -> None:
    """An HTTP error, a malformed body, a dropped connection and a timeout each give `None`
    for their own generation only; the other input still gets its answer."""
    llm.max_retries = 0
    llm.timeout = 1
    inputs = [
        chat(SPAIN),
        chat("[[status=500]] server error"),
        chat("[[malformed]] garbled body"),
        chat("[[drop]] dropped connection"),
        chat("[[delay=1.3]] too slow"),
    ]

    outputs = llm.generate(inputs)

    assert outputs == [[MADRID], [None], [None], [None], [None]]
    assert outputs[0].errors == [None]
    for output in outputs[1:]:
        assert output.errors[0], "a failed generation keeps its error"
    assert "500" in outputs[1].errors[0]
    assert "time" in outputs[4].errors[0].lower(), outputs[4].errors[0]
    assert llm.usage.failed_requests == 4
    assert len(received(server, provider, "server error")) == 1, "no retry with max_retries=0"
    # The server finishes the slow request after the client gave up; wait for it so that it
    # is not recorded during the next test.
    deadline = time.monotonic() + 5
    while not received(server, provider, "too slow") and time.monotonic() < deadline:
        time.sleep(0.02)


def check_retry_succeeds(llm: AsyncLLM, server: FakeServer, provider: str) -> None:
    """A 503 on the first attempt is retried by `AsyncLLM` (not the SDK) and succeeds."""
    llm.max_retries = 2
    text = f"[[fail_first=1 status=503 retry_after=0.01]] {SPAIN}"

    outputs = llm.generate([chat(text)])

    assert outputs == [[MADRID]]
    attempts = received(server, provider, "fail_first")
    assert [request.status for request in attempts] == [503, 200]
    assert llm.usage.retries == 1


def check_secret_never_shown(
    factory: LLMFactory,
    server: FakeServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The key is sent, but never appears in `dump()`, repr, logs or error messages."""
    server.configure(require_api_key=SECRET)
    caplog.set_level(logging.DEBUG)
    llm = loaded(factory(api_key=SECRET, max_retries=0))
    wrong = loaded(factory(api_key=WRONG_SECRET, max_retries=0))

    ok = llm.generate([chat(SPAIN)])
    failed = llm.generate([chat("[[status=500]] boom")])
    refused = wrong.generate([chat(SPAIN)])

    assert ok == [[MADRID]], "the right key is accepted"
    assert failed == [[None]]
    assert refused == [[None]]
    assert "401" in refused[0].errors[0] or "authentication" in refused[0].errors[0].lower()
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
    """Runs `LoadDataFromDicts >> TextGeneration(llm)` in a `Pipeline` and returns its rows.

    Args:
        llm: the LLM (not loaded: the pipeline loads it).
        instructions: one row per instruction.
        params: the `llm` runtime parameters of the task, as given to `Pipeline.run`.
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
