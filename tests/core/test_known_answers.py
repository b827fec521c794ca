"""`KnownAnswers`: the one lookup of answers given before (the step's journal, the response
cache) that both the synchronous and the asynchronous path use."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.core.fakes import EchoLLM

from potstill.llms.cache import AnswerFile, KnownAnswers, known_answers, open_store, use_stores
from potstill.llms.testing import TestLLM
from potstill.llms.typing import Generations

CHAT = [{"role": "user", "content": "hi"}]


def files(tmp_path: Path) -> tuple[AnswerFile, AnswerFile]:
    journal = AnswerFile(tmp_path / "journal.jsonl", per_row=True)
    cache = AnswerFile(tmp_path / "responses.jsonl")
    return journal, cache


def test_an_answer_found_in_the_cache_is_copied_into_the_journal(tmp_path: Path) -> None:
    journal, cache = files(tmp_path)
    known = KnownAnswers((journal, cache), {"model": "m"})
    key = known.key(CHAT, {}, 1, None)
    cache.put(cache.key(key, 3), Generations(["cached"]))

    assert known.recall(key, 3) == ["cached"]
    assert journal.get(journal.key(key, 3)) == ["cached"]
    assert known.recall(key, 4) == ["cached"]  # the cache is per request, not per row


def test_remember_keeps_answers_in_every_file_but_never_failures(tmp_path: Path) -> None:
    journal, cache = files(tmp_path)
    known = KnownAnswers((journal, cache), {"model": "m"})
    key = known.key(CHAT, {}, 1, None)

    known.remember(key, 0, Generations([None], errors=["HTTP 500"]))
    assert known.recall(key, 0) is None
    known.remember(key, 0, Generations(["fine"]))
    assert (len(journal), len(cache)) == (1, 1)


def test_keys_depend_on_the_llm_identity_and_the_request(tmp_path: Path) -> None:
    one = KnownAnswers(files(tmp_path), {"model": "a"})
    other = KnownAnswers(files(tmp_path), {"model": "b"})

    assert one.key(CHAT, {}, 1, None) != other.key(CHAT, {}, 1, None)
    assert one.key(CHAT, {}, 1, None) != one.key(CHAT, {"temperature": 0.1}, 1, None)
    assert one.key(CHAT, {}, None, 0) != one.key(CHAT, {}, None, 1)


def test_nothing_is_looked_up_outside_a_run_with_the_cache_off() -> None:
    assert known_answers(TestLLM()) is None


def test_the_cache_is_added_once_to_the_steps_journal(tmp_path: Path) -> None:
    journal = open_store(tmp_path / "journal.jsonl", per_row=True)
    cache = open_store(tmp_path / "responses.jsonl")
    llm = TestLLM(use_response_cache=True, response_cache_dir=str(tmp_path))
    use_stores(journal, cache)  # the pipeline turned the same cache on
    try:
        known = known_answers(llm)
    finally:
        use_stores()
    assert known is not None
    assert known.files == (journal, cache)
    assert known.identity == llm.cache_identity()


@pytest.mark.parametrize("llm", [EchoLLM(), TestLLM()], ids=["sync", "async"])
def test_both_paths_answer_a_repeated_request_from_the_cache(llm: object, tmp_path: Path) -> None:
    llm.use_response_cache = True  # type: ignore[attr-defined]
    llm.response_cache_dir = str(tmp_path)  # type: ignore[attr-defined]
    llm.load()  # type: ignore[attr-defined]

    first = llm.generate_outputs([CHAT])  # type: ignore[attr-defined]
    second = llm.generate_outputs([CHAT, CHAT])  # type: ignore[attr-defined]

    assert first == [["hi #0"]] and second == [["hi #0"], ["hi #0"]]
    usage = llm.usage  # type: ignore[attr-defined]
    assert (usage.requests, usage.cached_requests) == (1, 2)


@pytest.mark.parametrize("per_row", [True, False], ids=["journal", "cache"])
def test_an_answer_written_in_this_session_is_read_back_from_the_file(
    tmp_path: Path, per_row: bool
) -> None:
    store = AnswerFile(tmp_path / "answers.jsonl", per_row=per_row)
    answer = Generations(["kept \ud800 exactly", "two"], input_tokens=[5, None], output_tokens=[7])
    store.put("k", answer)
    store.put("other", Generations(["x"]))

    found = store.get("k")

    assert found == ["kept \ud800 exactly", "two"]
    assert (found.input_tokens, found.output_tokens) == ([5, None], [7, None])
    assert found is not store.get("k")  # a copy each time
    reopened = AnswerFile(tmp_path / "answers.jsonl", per_row=per_row)
    assert reopened.get("k") == found and len(reopened) == 2
