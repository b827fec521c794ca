"""Servers and proxies that ignore `n`, for every provider class that sends it.

The loopback server answers one choice whatever `n` asks (`ignore_n`). The missing
generations are requested one by one; the instance then remembers that its endpoint ignores
`n` and sends one request per generation for later inputs.
"""

from __future__ import annotations

import pytest
from tests.fake_server import FakeServer
from tests.providers.compatible import (
    ANYSCALE,
    AZURE,
    LITELLM,
    MISTRAL,
    OPENAI,
    TOGETHER,
    Compatible,
)
from tests.providers.contract import (
    FRANCE,
    HELLO,
    HELLO_ANSWER,
    MADRID,
    PARIS,
    SPAIN,
    chat,
    loaded,
    received,
)

SENDS_N = [OPENAI, TOGETHER, ANYSCALE, AZURE, MISTRAL, LITELLM]


@pytest.mark.parametrize("spec", SENDS_N, ids=[spec.id for spec in SENDS_N])
def test_missing_generations_are_requested(spec: Compatible, fake_server: FakeServer) -> None:
    fake_server.configure(ignore_n=True)
    llm = loaded(spec.make(fake_server, api_key="test-key"))

    first = llm.generate([chat(SPAIN), chat(FRANCE)], num_generations=3)
    later = llm.generate([chat(HELLO)], num_generations=3)

    assert first == [[MADRID] * 3, [PARIS] * 3]
    assert later == [[HELLO_ANSWER] * 3]
    assert all(error is None for output in first + later for error in output.errors)
    asked = [request.body.get("n", 1) for request in received(fake_server, spec.provider, "Spain")]
    assert sorted(asked) == [1, 1, 3], "one request with n=3, then the 2 missing ones"
    # Later inputs skip the wasted round trip: one request per generation from the start.
    hello = received(fake_server, spec.provider, HELLO)
    assert [request.body.get("n", 1) for request in hello] == [1, 1, 1]
    usage = llm.usage
    assert usage.requests == 3 + 3 + 3
    assert usage.extra_requests == 2 + 2 + 2
    assert usage.failed_requests == 0
    assert first[0].usage.input_tokens == 3 * 5, "the usage of every request is kept"
