"""The classes that are `OpenAILLM` under another name (Together, Anyscale: another base URL
and key) send OpenAI's request to their base URL, through the `openai` SDK against the
loopback server. The list comes from the contract's cases: every hosted class that is an
`OpenAILLM` subclass served on OpenAI's route.
"""

from __future__ import annotations

import pytest
from tests.fake_server import FakeServer
from tests.providers.cases import ProviderCase, cases
from tests.providers.contract import MADRID, SPAIN, chat, loaded, received

from potstill.llms import OpenAILLM

PLAIN = cases(
    lambda case: (
        issubclass(case.cls, OpenAILLM) and case.cls is not OpenAILLM and case.route == "openai"
    )
)


def test_there_are_plain_subclasses() -> None:
    assert {param.id for param in PLAIN} >= {"TogetherLLM", "AnyscaleLLM"}


@pytest.mark.parametrize("case", PLAIN)
def test_request_maps_messages_and_kwargs(case: ProviderCase, fake_server: FakeServer) -> None:
    llm = loaded(case.make(fake_server))
    messages = chat(SPAIN, system="Answer briefly.")

    outputs = llm.generate(
        [messages], max_new_tokens=64, temperature=0.5, top_p=0.9, stop=["\n"], seed=7
    )

    assert outputs == [[MADRID]]
    [request] = received(fake_server, "openai")
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer test-key"
    body = request.body
    assert body["model"] == case.kwargs["model"]
    assert body["messages"] == messages
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (64, 0.5, 0.9)
    assert (body["stop"], body["seed"], body["n"]) == (["\n"], 7, 1)
    assert "max_new_tokens" not in body
