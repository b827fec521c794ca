"""Exactly `num_generations` per input, whatever the number of choices a server sends back.

A server that answers `n + 1` choices must not make extra rows; one that ignores `n` and
answers one choice must not leave `None`s (the missing generations are requested).
"""

from __future__ import annotations

from typing import Any, List

from pydantic import validate_call
from tests.fake_server import FakeServer
from tests.reliability.helpers import generation_pipeline, make_llm

from potstill.llms import LLM, GroqLLM
from potstill.llms.typing import GenerateOutput
from potstill.typing import ChatType


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def openai_requests(server: FakeServer) -> list[Any]:
    return [request for request in server.requests if request.provider == "openai"]


def test_extra_choices_from_native_n_do_not_become_rows(fake_server: FakeServer) -> None:
    fake_server.configure(extra_choices=1)
    pipeline, task = generation_pipeline(fake_server, rows=5, name="extra-choices")
    task.num_generations = 2

    rows = pipeline.run(use_cache=False)["default"]["train"]

    assert len(rows) == 10
    assert rows["instruction"] == [f"q{i}" for i in range(5) for _ in range(2)]
    assert rows["generation"][:2] == ["Echo: q0", "Echo: q0 (sample 1)"]
    # The server did send 3 choices per request: the third was dropped.
    assert all(request.body["n"] == 2 for request in openai_requests(fake_server))


def test_extra_choices_on_the_parallel_path_are_dropped(fake_server: FakeServer) -> None:
    # Groq has no `n`: 2 generations are 2 requests, each answered with 2 choices here.
    fake_server.configure(extra_choices=1)
    llm = GroqLLM(model="llama-3.1-8b-instant", base_url=fake_server.url, api_key="test-key")
    llm.load()
    try:
        outputs = llm.generate_outputs([chat("howdy"), chat("again")], num_generations=2)
    finally:
        llm.unload()

    assert [list(output) for output in outputs] == [
        ["Echo: howdy", "Echo: howdy"],
        ["Echo: again", "Echo: again"],
    ]
    assert [len(output.errors) for output in outputs] == [2, 2]


class _GenerousLLM(LLM):
    """A synchronous LLM that answers one generation more than it is asked for."""

    @property
    def model_name(self) -> str:
        return "generous"

    @validate_call
    def generate(self, inputs: List[ChatType], num_generations: int = 1) -> List[GenerateOutput]:
        """Answers `num_generations + 1` texts per input.

        Args:
            inputs: the conversations.
            num_generations: how many generations per input.
        """
        return [[f"text {i}" for i in range(num_generations + 1)] for _ in inputs]


def test_extra_generations_of_a_sync_llm_are_dropped() -> None:
    llm = _GenerousLLM()
    llm.load()

    outputs = llm.generate_outputs([chat("a"), chat("b")], num_generations=2)

    assert [list(output) for output in outputs] == [["text 0", "text 1"]] * 2


def test_an_endpoint_that_ignores_n_gets_the_missing_generations(
    fake_server: FakeServer,
) -> None:
    fake_server.configure(ignore_n=True)
    llm = make_llm(fake_server)
    llm.load()
    try:
        first = llm.generate_outputs([chat("one")], num_generations=3)
        fake_server.reset()
        fake_server.configure(ignore_n=True)
        later = llm.generate_outputs([chat("two"), chat("three")], num_generations=3, row_offset=1)
    finally:
        llm.unload()

    assert [list(output) for output in first] == [["Echo: one"] * 3]
    assert [list(output) for output in later] == [["Echo: two"] * 3, ["Echo: three"] * 3]
    # Later inputs skip the wasted round trip: 3 requests of one generation each.
    assert sorted(request.body["n"] for request in openai_requests(fake_server)) == [1] * 6
    usage = llm.usage
    assert usage.requests == 3 + 6
    assert usage.extra_requests == 2 + 2 * 2
    assert usage.failed_requests == 0
