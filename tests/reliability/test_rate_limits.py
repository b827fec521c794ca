"""Requests- and tokens-per-minute limits, held as the server measured them."""

from __future__ import annotations

from tests.fake_server import FakeServer, count_tokens
from tests.reliability.helpers import generation_pipeline, make_llm

from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration


def starts(server: FakeServer) -> list[float]:
    return sorted(r.start for r in server.requests if r.provider == "openai")


def test_requests_per_minute_is_never_exceeded(fake_server: FakeServer) -> None:
    rpm = 600.0  # 10 per second: one every 100 ms
    pipeline, _ = generation_pipeline(fake_server, 21, max_concurrent_requests=50)
    pipeline.run(
        use_cache=False, params={"text_generation_0": {"llm": {"requests_per_minute": rpm}}}
    )

    times = starts(fake_server)
    assert len(times) == 21
    # 21 evenly paced starts span 20 intervals of 100 ms. The first request also opens the
    # connection and reaches the server late, so measure from the second one.
    assert times[-1] - times[1] >= 19 * 0.1 * 0.95
    # No window holds more starts than the rate allows (plus the one at its edge). Requests
    # are paced when they leave potstill; the windows are long enough that the client's own
    # scheduling jitter (tens of ms on a busy machine) cannot add another one.
    for window in (1.0, 1.5):
        assert fake_server.state.max_requests_in_window(window) <= window * rpm / 60 + 1


def test_the_limit_is_shared_by_every_task_using_the_llm(fake_server: FakeServer) -> None:
    rpm = 600.0
    llm = make_llm(fake_server, requests_per_minute=rpm, max_concurrent_requests=50)
    with Pipeline(name="shared-limit") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": f"q{i}"} for i in range(10)])
        first = TextGeneration(llm=llm)
        second = TextGeneration(llm=llm, output_mappings={"generation": "other"})
        load >> [first, second]
    pipeline.run(use_cache=False)

    times = starts(fake_server)
    assert len(times) == 20
    assert times[-1] - times[1] >= 18 * 0.1 * 0.95
    assert fake_server.state.max_requests_in_window(1.0) <= 1.0 * rpm / 60 + 1


def test_input_tokens_per_minute_holds_with_the_real_usage(fake_server: FakeServer) -> None:
    limit = 6000.0  # 100 input tokens per second
    prompt = "one two three four five six seven eight nine ten"  # 10 tokens on the server
    llm = make_llm(fake_server, input_tokens_per_minute=limit, max_concurrent_requests=50)
    llm.load()
    try:
        llm.generate_outputs([[{"role": "user", "content": f"{prompt} {i}"}] for i in range(12)])
    finally:
        llm.unload()
    requests = sorted(
        (r for r in fake_server.requests if r.provider == "openai"), key=lambda r: r.start
    )
    used = [count_tokens(r.body["messages"][0]["content"]) for r in requests]
    elapsed = requests[-1].start - requests[0].start
    # Tokens sent before the last start, divided by the time they took, stay under the limit
    # (the first estimates may be off; corrections with the reported usage catch up).
    assert sum(used[:-1]) / elapsed <= limit / 60 * 1.05


def test_a_run_without_limits_is_not_slowed_down(fake_server: FakeServer) -> None:
    pipeline, _ = generation_pipeline(fake_server, 20, max_concurrent_requests=50)
    pipeline.run(use_cache=False)
    times = starts(fake_server)
    assert times[-1] - times[0] < 0.5
