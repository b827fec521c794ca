"""EvolInstruct, EvolComplexity and EvolQuality: rounds of rewrites, answers, failures, and
the same rows on synchronous and asynchronous LLMs."""

from __future__ import annotations

import asyncio
import re
from typing import Optional

import pytest
from tests.gallery.helpers import AsyncScriptedLLM, ScriptedLLM, last_text, scripted

from potstill.steps.tasks import EvolComplexity, EvolInstruct, EvolQuality
from potstill.steps.tasks.evol_instruct.utils import MUTATION_TEMPLATES
from potstill.steps.tasks.evol_quality.utils import MUTATION_TEMPLATES as QUALITY_TEMPLATES
from potstill.typing import ChatType

_ORIGINAL = re.compile(r"(?:Original|Given) prompt:\n(.*)\n\n(?:Rewritten|New) prompt:", re.S)
_GIVEN_ANSWER = re.compile(r"Given answer:\n(.*)\n\nRewritten answer:", re.S)


def rewrite(conversation: ChatType) -> Optional[str]:
    """A model that evolves a prompt by appending `+`, and answers anything else."""
    text = last_text(conversation)
    match = _ORIGINAL.search(text) or _GIVEN_ANSWER.search(text)
    if match:
        return f"Rewritten prompt: {match.group(1)}+"
    return f"answer to {text}"


def mutation_of(prompt: str, templates: dict[str, str]) -> str:
    """Which template a prompt was made from."""
    for name, template in templates.items():
        head = template.split("<PROMPT>")[0]
        if prompt.startswith(head):
            return name
    raise AssertionError(prompt[:60])


def test_each_round_rewrites_the_latest_instruction() -> None:
    llm = scripted(ScriptedLLM, rewrite)
    task = EvolInstruct(llm=llm, num_evolutions=3)
    (row,) = next(task.process([{"instruction": "q"}]))
    assert row["evolved_instruction"] == "q+++"
    assert row["model_name"] == "scripted"
    assert [len(batch) for batch in llm.calls] == [1, 1, 1]  # one request per row and round
    sent = [last_text(conversation) for conversation in llm.conversations]
    assert [_ORIGINAL.search(prompt).group(1) for prompt in sent] == ["q", "q+", "q++"]
    metadata = row["potstill_metadata"]
    assert metadata[f"raw_output_{task.name}"] == [
        f"Rewritten prompt: q{'+' * n}" for n in (1, 2, 3)
    ]
    assert len(metadata[f"raw_input_{task.name}"]) == 3
    assert metadata[f"statistics_{task.name}"] == {
        "input_tokens": 6,
        "output_tokens": 9,
        "cost": None,
    }
    assert metadata[f"error_{task.name}"] is None


def test_the_rows_of_a_batch_are_asked_together_each_round() -> None:
    llm = scripted(ScriptedLLM, rewrite)
    rows = next(
        EvolInstruct(llm=llm, num_evolutions=2).process(
            [{"instruction": f"q{i}"} for i in range(4)]
        )
    )
    assert [row["evolved_instruction"] for row in rows] == [f"q{i}++" for i in range(4)]
    assert [len(batch) for batch in llm.calls] == [4, 4]


def test_mutations_are_random_but_reproducible_per_seed_row_and_round() -> None:
    def mutations(seed: int) -> list[str]:
        llm = scripted(ScriptedLLM, rewrite)
        next(EvolInstruct(llm=llm, num_evolutions=4, seed=seed).process([{"instruction": "q"}] * 5))
        return [mutation_of(last_text(c), MUTATION_TEMPLATES) for c in llm.conversations]

    first = mutations(42)
    assert first == mutations(42)
    assert first != mutations(7)
    assert len(set(first)) >= 3  # 20 draws over 5 mutations


def test_store_evolutions_with_answers_and_the_original() -> None:
    llm = scripted(ScriptedLLM, rewrite)
    task = EvolInstruct(
        llm=llm,
        num_evolutions=2,
        store_evolutions=True,
        generate_answers=True,
        include_original_instruction=True,
    )
    (row,) = next(task.process([{"instruction": "q"}]))
    assert row["evolved_instructions"] == ["q", "q+", "q++"]
    assert row["answers"] == ["answer to q", "answer to q+", "answer to q++"]
    # 2 evolution rounds, then one round per answer position
    assert [len(batch) for batch in llm.calls] == [1, 1, 1, 1, 1]


def test_without_the_original_and_with_one_answer() -> None:
    stored = EvolInstruct(
        llm=scripted(ScriptedLLM, rewrite), num_evolutions=2, store_evolutions=True
    )
    (row,) = next(stored.process([{"instruction": "q"}]))
    assert row["evolved_instructions"] == ["q+", "q++"]
    answered = EvolInstruct(
        llm=scripted(ScriptedLLM, rewrite), num_evolutions=2, generate_answers=True
    )
    (row,) = next(answered.process([{"instruction": "q"}]))
    assert (row["evolved_instruction"], row["answer"]) == ("q++", "answer to q++")


def test_a_failed_request_stops_that_row_and_keeps_the_others() -> None:
    def flaky(conversation: ChatType) -> Optional[str]:
        return None if "bad+" in last_text(conversation) else rewrite(conversation)

    task = EvolInstruct(llm=scripted(ScriptedLLM, flaky), num_evolutions=3, generate_answers=True)
    good, bad = next(task.process([{"instruction": "good"}, {"instruction": "bad"}]))
    assert (good["evolved_instruction"], good["answer"]) == ("good+++", "answer to good+++")
    assert (bad["evolved_instruction"], bad["answer"]) == (None, None)
    metadata = bad["potstill_metadata"]
    assert metadata[f"error_{task.name}"] == "scripted failure"
    assert metadata[f"raw_output_{task.name}"] == ["Rewritten prompt: bad+", None]


def test_a_failed_answer_is_none_on_its_own() -> None:
    def no_answer_for_the_first(conversation: ChatType) -> Optional[str]:
        return None if last_text(conversation) == "q+" else rewrite(conversation)

    task = EvolInstruct(
        llm=scripted(ScriptedLLM, no_answer_for_the_first),
        num_evolutions=2,
        store_evolutions=True,
        generate_answers=True,
    )
    (row,) = next(task.process([{"instruction": "q"}]))
    assert row["evolved_instructions"] == ["q+", "q++"]
    assert row["answers"] == [None, "answer to q++"]
    assert row["potstill_metadata"][f"error_{task.name}"] == "scripted failure"


def test_a_row_without_an_instruction_fails_alone() -> None:
    llm = scripted(ScriptedLLM, rewrite)
    good, bad = next(
        EvolInstruct(llm=llm, num_evolutions=1).process(
            [{"instruction": "q"}, {"instruction": None}]
        )
    )
    assert (good["evolved_instruction"], bad["evolved_instruction"]) == ("q+", None)
    error = bad["potstill_metadata"]["error_evol_instruct_0"]
    assert error == "format_input failed: column `instruction` must be a non-empty string, got None"
    assert len(llm.conversations) == 1


@pytest.mark.parametrize("store", [False, True])
def test_sync_and_async_llms_give_the_same_rows(store: bool) -> None:
    inputs = [{"instruction": f"q{i}"} for i in range(3)]

    def run(llm_class: type) -> list[dict]:
        task = EvolInstruct(
            llm=scripted(llm_class, rewrite, model="m"),
            num_evolutions=2,
            store_evolutions=store,
            generate_answers=True,
        )
        if llm_class is ScriptedLLM:
            return next(task.process(inputs))
        return asyncio.run(task.aprocess(inputs, row_offset=0))

    assert run(ScriptedLLM) == run(AsyncScriptedLLM)


def test_evol_complexity_uses_the_in_depth_mutations_only() -> None:
    llm = scripted(ScriptedLLM, rewrite)
    task = EvolComplexity(llm=llm, num_evolutions=5)
    (row,) = next(task.process([{"instruction": "q"}] * 1))
    assert row["evolved_instruction"] == "q+++++"
    names = {mutation_of(last_text(c), MUTATION_TEMPLATES) for c in llm.conversations}
    assert names and "BREADTH" not in names


def test_evol_quality_rewrites_the_response_to_the_instruction() -> None:
    llm = scripted(ScriptedLLM, rewrite)
    task = EvolQuality(
        llm=llm, num_evolutions=2, store_evolutions=True, include_original_response=True
    )
    (row,) = next(task.process([{"instruction": "Why is the sky blue?", "response": "Light."}]))
    assert row["evolved_responses"] == ["Light.", "Light.+", "Light.++"]
    first = last_text(llm.conversations[0])
    assert "Prompt:\nWhy is the sky blue?\n\nGiven answer:\nLight." in first
    mutation_of(first, QUALITY_TEMPLATES)  # one of Evol-Quality's mutations
    last = EvolQuality(llm=scripted(ScriptedLLM, rewrite), num_evolutions=2)
    (row,) = next(last.process([{"instruction": "i", "response": "r"}]))
    assert row["evolved_response"] == "r++"
