"""`TogetherLLM` through the `openai` SDK against the loopback server's chat completions.

What it shares with the other OpenAI subclasses is in `test_openai_compatible.py`, and with
every hosted provider in `test_contract.py`.
"""

from __future__ import annotations

from tests.fake_server import FakeServer
from tests.providers.cases import HOSTED
from tests.providers.contract import (
    SPAIN,
    chat,
    loaded,
    received,
)


def test_extra_body_fields_are_merged_into_the_body(fake_server: FakeServer) -> None:
    [together] = [case for case in HOSTED if case.id == "TogetherLLM"]
    llm = loaded(together.make(fake_server))

    llm.generate([chat(SPAIN)], extra_body={"top_k": 40, "repetition_penalty": 1.1})

    [request] = received(fake_server, "openai")
    assert (request.body["top_k"], request.body["repetition_penalty"]) == (40, 1.1)
    assert "extra_body" not in request.body
