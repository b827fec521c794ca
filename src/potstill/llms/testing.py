"""LLMs for tests and examples: `TestLLM` and `FunctionLLM` answer without a network, an API
key or a model, and go through everything a hosted provider's requests go through (the
limiter, retries, the journal and the response cache, usage), so a pipeline tested with them
behaves the same with a real provider.

```python
from potstill.llms.testing import FunctionLLM, TestLLM

echo = TestLLM()  # "<last message> #<i>" for generation i
fixed = TestLLM(output_text="positive")


def sentiment(input, **kwargs):
    return "positive" if "good" in input[-1]["content"] else "negative"


scripted = FunctionLLM(function=sentiment)
```
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Optional

from pydantic import Field, NonNegativeFloat, PrivateAttr, validate_call

from potstill.llms.async_llm import AsyncLLM
from potstill.llms.typing import Generations
from potstill.typing import ChatType
from potstill.utils.fields import ExecutionOnly

__all__ = ["FunctionLLM", "RecordedRequest", "TestLLM"]


@dataclass(frozen=True)
class RecordedRequest:
    """One request a test LLM received.

    Attributes:
        input: the conversation.
        num_generations: how many generations the request asked for.
        kwargs: the generation kwargs it came with.
    """

    input: ChatType
    num_generations: int
    kwargs: dict[str, Any]


class _RequestLog:
    """The requests a test LLM received and how many were in flight at once (plain attributes:
    pydantic private attributes are slow to update on every request)."""

    __slots__ = ("_lock", "in_flight", "peak", "requests")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.peak = 0

    def start(self, request: Optional[RecordedRequest]) -> None:
        with self._lock:
            if request is not None:
                self.requests.append(request)
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)

    def finish(self) -> None:
        with self._lock:
            self.in_flight -= 1


class _RecordingLLM(AsyncLLM):
    """What both test LLMs share: each request is recorded, takes `latency` seconds and counts
    towards `peak_concurrency`; `answer` (which subclasses implement) makes its generations."""

    __test__: ClassVar[bool] = False  # pytest: not a test class, whatever its name says

    model: str = "test"
    latency: ExecutionOnly[NonNegativeFloat] = Field(
        default=0.0, description="Seconds each request takes (it waits on the event loop)."
    )
    keep_requests: ExecutionOnly[bool] = Field(
        default=True,
        description="Keep every request in `requests` (turn it off for long runs, such as "
        "benchmarks, where the list would only grow).",
    )

    _log: _RequestLog = PrivateAttr(default_factory=lambda: _RequestLog())

    @property
    def model_name(self) -> str:
        """The `model` field."""
        return self.model

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in the order they came, unless `keep_requests` is
        off (answered from the journal or the response cache, a request is not sent, so not
        recorded)."""
        return list(self._log.requests)

    @property
    def peak_concurrency(self) -> int:
        """The most requests that were in flight at once."""
        return self._log.peak

    @validate_call
    async def agenerate(
        self, input: ChatType, num_generations: int = 1, **kwargs: Any
    ) -> Generations:
        """Answers one conversation.

        Args:
            input: the conversation.
            num_generations: how many generations to return.
            **kwargs: any generation kwarg (e.g. `temperature`): accepted and kept in
                `requests`.

        Returns:
            The generations, with token usage.
        """
        log = self.__pydantic_private__["_log"]  # `self._log`, without pydantic's slow lookup
        log.start(RecordedRequest(input, num_generations, kwargs) if self.keep_requests else None)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            return await self.answer(input, num_generations, **kwargs)
        finally:
            log.finish()

    async def answer(self, input: ChatType, num_generations: int, **kwargs: Any) -> Generations:
        """The generations of one request (subclasses implement it).

        Args:
            input: the conversation.
            num_generations: how many generations to return.
            **kwargs: the generation kwargs.

        Returns:
            The generations.
        """
        raise NotImplementedError


class TestLLM(_RecordingLLM):
    """An LLM that answers every request at once, the same way each time.

    Generation `i` of a conversation is its last message's text followed by ` #i` (so the
    generations of an input, and the answers to different inputs, are told apart), or
    `output_text` when it is set. Token usage counts words: the words of every message as
    input tokens, the words of the generations as output tokens.

    Every request is kept in `requests` (what a task sent, with which generation kwargs), and
    `peak_concurrency` says how many were in flight at once: with `latency`, each request takes
    that long, so `max_concurrent_requests` and the pacing limits can be watched at work.

    Attributes:
        model: the name it reports as `model_name`.
        output_text: the text of every generation; `None` echoes the last message.
        latency: seconds each request takes.
        keep_requests: keep every request in `requests`.

    Examples:
        ```python
        from potstill.llms.testing import TestLLM

        llm = TestLLM()
        llm.load()
        print(llm.generate(inputs=[[{"role": "user", "content": "hi"}]], num_generations=2))
        # [['hi #0', 'hi #1']]
        ```
    """

    output_text: Optional[str] = None

    async def answer(self, input: ChatType, num_generations: int, **kwargs: Any) -> Generations:
        """The echoed (or fixed) generations, with word counts as usage (the generation
        kwargs change nothing)."""
        if self.output_text is not None:
            texts = [self.output_text] * num_generations
        else:
            last = str(input[-1]["content"]) if input else ""
            texts = [f"{last} #{index}" for index in range(num_generations)]
        return Generations.from_request(
            texts,
            input_tokens=sum(_words(message.get("content")) for message in input),
            output_tokens=sum(_words(text) for text in texts),
        )


class FunctionLLM(_RecordingLLM):
    """An LLM whose answers come from a Python function: scripted answers, failures or slow
    requests for a test, without writing an LLM class.

    The function gets the conversation and the request's generation kwargs. It is called once
    per generation and returns one: a text, `None`, or a `Generations` (to report token usage
    too). When it takes a `num_generations` argument, it is called once per request instead
    and returns that many generations (a list of texts, or a `Generations`). An `async def`
    function is awaited; a plain function runs on the event loop, so keep it quick.

    What the function raises fails that request only, as a provider's error would: the error
    is logged with the row and kept in the generations' `errors` (and in the task's
    `potstill_metadata`); errors that look transient (timeouts, connection errors) are retried
    first, as they would be with a provider.

    Attributes:
        function: answers one conversation (see above).
        model: the name it reports as `model_name`.
        latency: seconds each request takes, before the function is called.
        keep_requests: keep every request in `requests`.

    Examples:
        ```python
        from potstill.llms.testing import FunctionLLM


        def answer(input, **kwargs):
            if "boom" in input[-1]["content"]:
                raise ValueError("cannot answer that")
            return input[-1]["content"].upper()


        llm = FunctionLLM(function=answer, max_retries=0)
        llm.load()
        outputs = llm.generate(
            inputs=[[{"role": "user", "content": "hi"}], [{"role": "user", "content": "boom"}]]
        )
        print(outputs, outputs[1].errors)
        # [['HI'], [None]] ['ValueError: cannot answer that']
        ```
    """

    model: str = "function"
    function: Callable[..., Any]

    async def answer(self, input: ChatType, num_generations: int, **kwargs: Any) -> Generations:
        """The function's generations: it is called once per request, or once per
        generation (see the class)."""
        if _takes_num_generations(self.function):
            answer = await _result(self.function(input, num_generations=num_generations, **kwargs))
            return Generations.coerce(answer)
        answers = await asyncio.gather(
            *(_result(self.function(input, **kwargs)) for _ in range(num_generations))
        )
        return Generations.concat(Generations.coerce(answer) for answer in answers)


def _words(text: Any) -> int:
    return len(text.split()) if isinstance(text, str) else 0


def _takes_num_generations(function: Callable[..., Any]) -> bool:
    try:
        return "num_generations" in inspect.signature(function).parameters
    except (TypeError, ValueError):  # a callable without a signature (a C builtin)
        return False


async def _result(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value
