"""The pieces the Ray engine's actors are made of, run here without Ray: the shared limiter
and the store of a run's answers (`tests/on_ray/` runs them on a cluster)."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

import pytest

from potstill.errors import PipelineBusyError
from potstill.llms.typing import Generations
from potstill.pipeline.ray import store_sink
from potstill.pipeline.ray.limiter import LimiterActor, SharedLimiter
from potstill.pipeline.ray.store_sink import AnswerBuffer, RemoteCache, RemoteJournal, StoreSink


class Call:
    """`handle.method.remote(...)` of a Ray actor, run in this process."""

    def __init__(self, method: Any, calls: list[Any]) -> None:
        self.method = method
        self.calls = calls

    def remote(self, *args: Any) -> Ready:
        self.calls.append(args)
        return Ready(self.method(*args))


class Ready:
    """An awaitable result, like an `ObjectRef` (fine to drop without awaiting)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Any:
        return self.value
        yield  # a generator: `await` gets the value at once


class Handle:
    """A stand-in for an actor handle around a local object."""

    def __init__(self, target: Any) -> None:
        self.calls: dict[str, list[Any]] = {}
        self.target = target

    def __getattr__(self, name: str) -> Call:
        return Call(getattr(self.target, name), self.calls.setdefault(name, []))


# -- the limiter --------------------------------------------------------------------------------


def test_the_limiter_actor_spaces_the_starts_of_every_replica() -> None:
    actor = LimiterActor((600.0, None, None, None))  # 10 requests per second
    first = actor.book([(0, None)] * 3, [])
    second = actor.book([(0, None)] * 2, [])  # another replica, a moment later

    starts = [start for start, _, _ in first + second]
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert gaps == pytest.approx([0.1] * 4, abs=0.01)
    assert starts[0] == pytest.approx(time.time(), abs=0.05)


def test_token_limits_book_estimates_and_correct_them_with_the_usage() -> None:
    actor = LimiterActor((None, 6000.0, None, None))  # 100 tokens per second
    ((start, booked_in, booked_out),) = actor.book([(40, 10)], [])
    assert (booked_in, booked_out) == (40, 10)
    # the answer used 150 tokens more than booked: the next start moves 1.5 s further
    ((later, _, _),) = actor.book([(40, 10)], [(booked_in, booked_out, 190, 10)])
    assert later - start == pytest.approx(0.5 + 1.5, abs=0.05)


class Replica:
    def __init__(self) -> None:
        self.paused: list[tuple[str, float]] = []

    def cool_down(self, key: str, seconds: float) -> None:
        self.paused.append((key, seconds))


def test_a_429_pauses_the_schedule_and_every_other_replica() -> None:
    actor = LimiterActor((None, None, None, None))
    one, two = Handle(Replica()), Handle(Replica())
    actor.register([("one", one), ("two", two)], "llm")

    actor.cool_down(2.0, source="one")

    assert one.target.paused == []  # it paused itself
    assert two.target.paused == [("llm", 2.0)]
    ((start, _, _),) = actor.book([(0, None)], [])
    assert start - time.time() == pytest.approx(2.0, abs=0.1)


def test_waiting_requests_are_booked_in_one_call() -> None:
    actor = Handle(LimiterActor((6000.0, None, None, None)))  # 100 per second
    limiter = SharedLimiter(actor, limited=True, replica="me")
    limiter.configure(6000.0, None, None, None)

    async def burst() -> None:
        await asyncio.gather(*(limiter.acquire("hi", None) for _ in range(10)))

    started = time.monotonic()
    asyncio.run(burst())

    assert 0.07 < time.monotonic() - started < 0.5  # the 10th starts 90 ms after the 1st
    assert [len(requests) for requests, _ in actor.calls["book"]] in ([10], [1, 9])


def test_a_pause_holds_requests_even_without_limits() -> None:
    actor = Handle(LimiterActor((None, None, None, None)))
    limiter = SharedLimiter(actor, limited=False, replica="me")
    assert not limiter.active

    limiter.cool_down(0.3)  # a 429 here: the others are told through the actor

    assert limiter.active and actor.calls["cool_down"] == [(0.3, "me")]
    started = time.monotonic()
    asyncio.run(limiter.acquire("hi", None))
    assert time.monotonic() - started >= 0.28
    assert "book" not in actor.calls  # no limit: nothing to book


# -- the store of answers -------------------------------------------------------------------


def answer(text: str) -> Generations:
    return Generations([text], input_tokens=[3], output_tokens=[5])


def test_the_sink_keeps_a_steps_journal_by_row(tmp_path: Path) -> None:
    path = tmp_path / "step" / "requests.jsonl"
    sink = StoreSink()
    assert sink.open_journal("step", str(path)) == 0
    sink.append("step", [("k1:0", answer("a")), ("k2:0", answer("b")), ("k1:7", answer("c"))])

    assert sorted(sink.recall("step", 0, 5)) == ["k1:0", "k2:0"]
    assert list(sink.recall("step", 5, 10)) == ["k1:7"]
    sink.close()

    reopened = StoreSink()  # the next run finds them on disk
    assert reopened.open_journal("step", str(path)) == 3
    assert reopened.recall("step", 7, 8)["k1:7"] == ["c"]
    reopened.close()


def test_a_journal_is_written_by_one_sink_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_sink, "_LOCK_WAIT_S", 0.2)
    path = str(tmp_path / "requests.jsonl")
    first = StoreSink()
    first.open_journal("step", path)

    with pytest.raises(PipelineBusyError, match="another run"):
        StoreSink().open_journal("step", path)
    first.close()  # a killed driver's sink goes away the same way
    second = StoreSink()
    assert second.open_journal("step", path) == 0
    second.close()


def test_replicas_see_the_journal_of_their_rows_and_send_new_answers() -> None:
    sent: list[Any] = []
    buffer = AnswerBuffer(sent.append)
    journal = RemoteJournal({"k:3": answer("known")}, buffer)

    assert journal.key("k", 3) == "k:3"
    assert journal.get("k:3") == ["known"] and journal.get("k:4") is None
    journal.put("k:4", answer("new"))
    journal.put("k:5", Generations([None], errors=["boom"]))  # failed: not kept
    journal.put("k:3", answer("again"))  # known: not sent again
    assert sent == []
    buffer.flush()
    assert [key for key, _ in sent[0]] == ["k:4"]
    assert buffer.flush() is None


def test_replicas_fetch_a_cached_answer_only_when_a_request_needs_it() -> None:
    fetched: list[list[str]] = []

    def fetch(keys: list[str]) -> dict[str, Generations]:
        fetched.append(keys)
        return {key: answer("cached") for key in keys}

    sent: list[Any] = []
    cache = RemoteCache(fetch, {"cached-key"}, AnswerBuffer(sent.append))

    assert cache.key("cached-key", 9) == "cached-key"  # the same for every row
    assert cache.get("other") is None and fetched == []
    assert cache.get("cached-key") == ["cached"]
    assert cache.get("cached-key") == ["cached"] and fetched == [["cached-key"]]
    cache.put("cached-key", answer("x"))
    cache.put("fresh", answer("y"))
    cache._buffer.flush()
    assert [key for key, _ in sent[0]] == ["fresh"]
