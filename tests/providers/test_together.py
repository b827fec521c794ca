"""`TogetherLLM` through the `openai` SDK against the loopback server's chat completions.

The tests it shares with Anyscale and the other OpenAI-compatible providers are in
`test_openai_compatible.py`.
"""

from __future__ import annotations

from tests.fake_server import FakeServer
from tests.providers.compatible import TOGETHER
from tests.providers.contract import (
    SPAIN,
    chat,
    loaded,
    received,
)


def test_extra_body_fields_are_merged_into_the_body(fake_server: FakeServer) -> None:
    llm = loaded(TOGETHER.make(fake_server, api_key="test-key"))

    llm.generate([chat(SPAIN)], extra_body={"top_k": 40, "repetition_penalty": 1.1})

    [request] = received(fake_server, "openai")
    assert (request.body["top_k"], request.body["repetition_penalty"]) == (40, 1.1)
    assert "extra_body" not in request.body
