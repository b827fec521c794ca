"""EvolInstructGenerator, EvolComplexityGenerator and MagpieGenerator: rounds, length bounds,
batches and offsets (a resumed run skips what earlier runs emitted)."""

from __future__ import annotations

import re
from typing import Optional

import pytest
from tests.gallery.helpers import ScriptedLLM, last_text, scripted

from potstill.steps.tasks import EvolComplexityGenerator, EvolInstructGenerator, MagpieGenerator
from potstill.steps.tasks.evol_instruct.utils import SEED_WORDS
from potstill.typing import ChatType

_FRESH = re.compile(r"uses one or more of these words: (.*)$")
_ORIGINAL = re.compile(r"(?:Original|Given) prompt:\n(.*)\n\n", re.S)


def grow(conversation: ChatType) -> Optional[str]:
    """Starts from the seed words, then adds `" more"` with each evolution."""
    text = last_text(conversation)
    fresh = _FRESH.search(text)
    if fresh:
        return f"About {fresh.group(1)}?"
    return f"{_ORIGINAL.search(text).group(1)} more"


def run(generator, offset: int = 0) -> list[tuple[list[dict], bool]]:
    return list(generator.process(offset))


def test_instructions_evolve_until_their_length_fits() -> None:
    llm = scripted(ScriptedLLM, grow)
    generator = EvolInstructGenerator(
        llm=llm, num_instructions=4, min_length=40, max_length=60, seed=1
    )
    batches = run(generator)
    rows = [row for batch, _ in batches for row in batch]
    assert len(rows) == 4
    assert all(40 <= len(row["instruction"]) <= 60 for row in rows)
    assert [last for _, last in batches] == [False] * (len(batches) - 1) + [True]
    assert all(batch for batch, _ in batches)  # no empty batch
    # Every round asks for every slot at once; the first round starts them all afresh.
    assert {len(batch) for batch in llm.calls} == {4}
    assert all(_FRESH.search(last_text(c)) for c in llm.calls[0])
    words = set(SEED_WORDS)
    for conversation in llm.calls[0]:
        assert set(_FRESH.search(last_text(conversation)).group(1).split(", ")) <= words
    # Each row's metadata holds its slot's answers since its fresh start.
    traces = [row["potstill_metadata"][f"raw_output_{generator.name}"] for row in rows]
    assert all(trace[0].startswith("About ") for trace in traces)
    assert all(trace[-1] == row["instruction"] for trace, row in zip(traces, rows))
    assert any(len(trace) >= 2 for trace in traces)  # some had to grow


def test_too_long_evolutions_start_over() -> None:
    def verbose(conversation: ChatType) -> Optional[str]:
        text = last_text(conversation)
        return "x" * 100 if _ORIGINAL.search(text) else "Short start?"

    llm = scripted(ScriptedLLM, verbose)
    generator = EvolInstructGenerator(llm=llm, num_instructions=1, min_length=20, max_length=50)
    with pytest.raises(Exception, match="50 rounds produced no instruction between min_length=20"):
        run(generator)
    # Each too long evolution sent its slot back to a fresh start (never evolved further).
    assert not any("x" * 100 in last_text(c) for c in llm.conversations)


def test_bounds_that_nothing_fits_are_refused_before_any_request() -> None:
    llm = scripted(ScriptedLLM, grow)
    generator = EvolInstructGenerator(llm=llm, num_instructions=1, min_length=100, max_length=50)
    with pytest.raises(ValueError, match="min_length=100 is more than max_length=50"):
        run(generator)
    assert llm.calls == []


def test_same_seed_same_instructions_and_an_offset_skips_the_emitted_ones() -> None:
    def make() -> EvolInstructGenerator:
        return EvolInstructGenerator(
            llm=scripted(ScriptedLLM, grow), num_instructions=5, min_length=10, max_length=45
        )

    full = [row["instruction"] for batch, _ in run(make()) for row in batch]
    assert full == [row["instruction"] for batch, _ in run(make()) for row in batch]
    resumed = run(make(), offset=2)
    assert [row["instruction"] for batch, _ in resumed for row in batch] == full[2:]
    assert resumed[-1][1] is True
    other_seed = make()
    other_seed.seed = 5
    assert [row["instruction"] for batch, _ in run(other_seed) for row in batch] != full


def test_answers_are_generated_for_each_new_instruction() -> None:
    def answer(conversation: ChatType) -> Optional[str]:
        text = last_text(conversation)
        return grow(conversation) if _FRESH.search(text) or _ORIGINAL.search(text) else "Yes."

    generator = EvolComplexityGenerator(
        llm=scripted(ScriptedLLM, answer),
        num_instructions=2,
        min_length=5,
        max_length=200,
        generate_answers=True,
    )
    rows = [row for batch, _ in run(generator) for row in batch]
    assert [row["answer"] for row in rows] == ["Yes.", "Yes."]
    assert all(row["instruction"].startswith("About ") for row in rows)


def test_a_generator_whose_requests_all_fail_stops_with_the_error() -> None:
    generator = EvolInstructGenerator(
        llm=scripted(ScriptedLLM, lambda conversation: None), num_instructions=2
    )
    with pytest.raises(RuntimeError, match=r"every request of the last 3 rounds failed .*scripted"):
        run(generator)


def test_magpie_generator_writes_num_rows_in_batches() -> None:
    llm = scripted(
        ScriptedLLM,
        lambda c: "Question?" if not c or c[-1]["role"] != "user" else "Answer.",
        magpie_pre_query_template="qwen2",
    )
    generator = MagpieGenerator(llm=llm, num_rows=5, batch_size=2)
    batches = run(generator)
    assert [len(batch) for batch, _ in batches] == [2, 2, 1]
    assert [last for _, last in batches] == [False, False, True]
    rows = [row for batch, _ in batches for row in batch]
    assert all((row["instruction"], row["response"]) == ("Question?", "Answer.") for row in rows)
    assert [len(batch) for batch in llm.calls] == [2, 2, 2, 2, 1, 1]  # user, then assistant
    resumed = run(MagpieGenerator(llm=llm, num_rows=5, batch_size=2), offset=4)
    assert [len(batch) for batch, _ in resumed] == [1]
    assert run(MagpieGenerator(llm=llm, num_rows=5, batch_size=2), offset=5) == []


def test_magpie_generator_picks_system_prompts_the_same_way_each_run() -> None:
    def picks() -> list[str]:
        llm = scripted(ScriptedLLM, lambda c: "Hi?", magpie_pre_query_template="qwen2")
        generator = MagpieGenerator(
            llm=llm,
            num_rows=12,
            only_instruction=True,
            system_prompt={"math": ("You teach math.", 0.5), "art": ("You teach art.", 0.5)},
        )
        return [row["system_prompt_key"] for batch, _ in run(generator) for row in batch]

    first = picks()
    assert first == picks()
    assert set(first) == {"math", "art"}
