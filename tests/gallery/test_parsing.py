"""How each instruction task reads its LLM's answers: well-formed, partly malformed, garbage.

An answer a task cannot read never fails the batch: its columns are `None`, the raw answer
and the reason stay in `potstill_metadata`, and the other rows are unaffected.
"""

from __future__ import annotations

from typing import Optional

import pytest
from tests.gallery.helpers import ScriptedLLM, last_text, scripted

from potstill.steps.tasks import (
    EvolInstruct,
    Genstruct,
    InstructionBacktranslation,
    Magpie,
    SelfInstruct,
)
from potstill.steps.tasks.evolution import fill_template, parse_rewrite
from potstill.steps.tasks.genstruct import parse_interaction
from potstill.steps.tasks.instruction_backtranslation import parse_rating
from potstill.steps.tasks.self_instruct import parse_queries
from potstill.typing import ChatType

# -- SelfInstruct ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "queries"),
    [
        ("1. What is x?\n2. Describe y.\n3. Why z?", ["What is x?", "Describe y.", "Why z?"]),
        # a preamble and a closing line around the list are dropped
        ("Here are 2 queries:\n\n1. What is x?\n2) Describe y.\n\nHope this helps!", None),
        ("**1.** What is x?\n**2.** Describe y.", None),
        ("Query 1: What is x?\nQuery 2: Describe y.", None),
        ('1. "What is x?"\n2. `Describe y.`', None),
        ("- What is x?\n* Describe y.", None),
        ("What is x?\n\nDescribe y.", None),
    ],
)
def test_self_instruct_reads_numbered_bulleted_or_plain_lists(
    output: str, queries: Optional[list[str]]
) -> None:
    assert parse_queries(output) == (queries or ["What is x?", "Describe y."])


def test_self_instruct_keeps_numbers_inside_a_query() -> None:
    assert parse_queries("1. Is 3.5 more than 3?\n2. What is 2 + 2?") == [
        "Is 3.5 more than 3?",
        "What is 2 + 2?",
    ]


@pytest.mark.parametrize(
    "output", ["", "   \n\n", "1.   \n2. **", "Sorry, I can't help with that."]
)
def test_self_instruct_finds_no_query_in_garbage(output: str) -> None:
    with pytest.raises(ValueError, match="no queries"):
        parse_queries(output)


# -- Evol rewrites -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "output",
    [
        "Explain photosynthesis in two steps.",
        "Rewritten prompt:\nExplain photosynthesis in two steps.",
        "#Rewritten Prompt#:\nExplain photosynthesis in two steps.",
        "Sure! Here is the rewritten prompt: Explain photosynthesis in two steps.",
        '**New prompt:** "Explain photosynthesis in two steps."',
        "  Explain photosynthesis in two steps.  \n",
    ],
)
def test_evol_reads_the_rewrite_after_any_label(output: str) -> None:
    assert parse_rewrite(output) == "Explain photosynthesis in two steps."


@pytest.mark.parametrize("output", ["", "  \n", "Rewritten prompt:", '**Improved answer:** ""'])
def test_evol_finds_no_rewrite_in_garbage(output: str) -> None:
    with pytest.raises(ValueError, match="no rewritten text"):
        parse_rewrite(output)


def test_templates_are_filled_in_one_pass() -> None:
    # A response that happens to contain a placeholder is inserted as it is.
    filled = fill_template("Q: <PROMPT> A: <RESPONSE>", PROMPT="say <RESPONSE>", RESPONSE="ok")
    assert filled == "Q: say <RESPONSE> A: ok"


# -- Genstruct ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "output",
    [
        "What is x? [[[Assistant]]] x is y.",
        "[[[User]]] What is x?\n[[[Assistant]]]\nx is y.\n",
        # the model went on with another interaction: only the first one is kept
        "What is x? [[[Assistant]]] x is y. [[[User]]] And z?",
    ],
)
def test_genstruct_splits_the_user_message_from_the_answer(output: str) -> None:
    assert parse_interaction(output) == ("What is x?", "x is y.")


@pytest.mark.parametrize(
    ("output", "error"),
    [
        ("What is x? x is y.", "no \\[\\[\\[Assistant"),
        ("What is x? [[[Assistant]]]   ", "empty"),
        ("[[[Assistant]]] x is y.", "empty"),
    ],
)
def test_genstruct_rejects_an_answer_it_cannot_split(output: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_interaction(output)


# -- InstructionBacktranslation ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "score", "reason"),
    [
        ("It answers directly.\nScore: 4", 4, "It answers directly."),
        ("It answers directly.\n\n**Score:** 5/5", 5, "It answers directly."),
        ("I would give it a score of 3 out of 5.", 3, "I would give it a"),
        ("score: 2", 2, None),
        # the last score is the rating; an earlier mention is part of the reason
        (
            "A score of 5 needs focus; this lacks it.\nScore: 2",
            2,
            "A score of 5 needs focus; this lacks it.",
        ),
    ],
)
def test_backtranslation_reads_the_last_score(
    output: str, score: int, reason: Optional[str]
) -> None:
    assert parse_rating(output) == (score, reason)


@pytest.mark.parametrize(
    "output", ["Great answer!", "Score: 6", "Score: 4.5", "Score: 45", "Score: N/A", ""]
)
def test_backtranslation_rejects_an_answer_without_a_score_from_1_to_5(output: str) -> None:
    with pytest.raises(ValueError, match="no 'Score"):
        parse_rating(output)


# -- through the task: garbage gives None columns, the raw answer kept ------------------------


def _single_request_cases() -> list[tuple]:
    return [
        (SelfInstruct(llm=ScriptedLLM()), {"input": "text"}, "1. What?\n2. Why?", ""),
        (
            Genstruct(llm=ScriptedLLM()),
            {"title": "T", "content": "C"},
            "Q? [[[Assistant]]] A.",
            "Q A",
        ),
        (
            InstructionBacktranslation(llm=ScriptedLLM()),
            {"instruction": "i", "generation": "g"},
            "Good.\nScore: 4",
            "Good.",
        ),
    ]


@pytest.mark.parametrize("case", range(3), ids=["SelfInstruct", "Genstruct", "Backtranslation"])
def test_a_garbage_answer_gives_none_columns_and_keeps_the_raw_answer(case: int) -> None:
    task, row, good, garbage = _single_request_cases()[case]

    def reply(conversation: ChatType) -> str:
        return garbage if "GARBAGE" in last_text(conversation) else good

    task.llm = scripted(ScriptedLLM, reply)
    bad_row = {key: f"{value} GARBAGE" for key, value in row.items()}
    good_out, bad_out = next(task.process([row, bad_row]))
    columns = [c for c in task.outputs if c != "model_name"]
    assert all(good_out[column] is not None for column in columns)
    assert all(bad_out[column] is None for column in columns)
    metadata = bad_out["potstill_metadata"]
    assert metadata[f"raw_output_{task.name}"] == garbage
    assert metadata[f"error_{task.name}"].startswith("format_output failed: ValueError")
    assert good_out["potstill_metadata"][f"error_{task.name}"] is None


def test_a_failed_generation_gives_none_columns_and_its_error() -> None:
    task = InstructionBacktranslation(llm=scripted(ScriptedLLM, lambda conversation: None))
    (row,) = next(task.process([{"instruction": "i", "generation": "g"}]))
    assert (row["score"], row["reason"]) == (None, None)
    assert row["potstill_metadata"][f"error_{task.name}"] == "scripted failure"


def test_a_row_with_a_wrong_column_type_fails_alone() -> None:
    task = Genstruct(llm=scripted(ScriptedLLM, lambda conversation: "Q? [[[Assistant]]] A."))
    good, bad = next(task.process([{"title": "T", "content": "C"}, {"title": "T", "content": 3}]))
    assert good["user"] == "Q?"
    assert bad["user"] is None
    error = bad["potstill_metadata"][f"error_{task.name}"]
    assert "column `content` must be a string, got int" in error


def test_evol_garbage_stops_that_row_only() -> None:
    def reply(conversation: ChatType) -> str:
        return "   " if "GARBAGE" in last_text(conversation) else "Harder question?"

    task = EvolInstruct(llm=scripted(ScriptedLLM, reply), num_evolutions=2)
    good, bad = next(task.process([{"instruction": "q"}, {"instruction": "GARBAGE"}]))
    assert good["evolved_instruction"] == "Harder question?"
    assert bad["evolved_instruction"] is None
    metadata = bad["potstill_metadata"][f"error_{task.name}"]
    assert metadata.startswith("format_output failed: the answer holds no rewritten text")
    assert bad["potstill_metadata"][f"raw_output_{task.name}"] == ["   "]  # no second round


def test_magpie_empty_message_gives_none_columns() -> None:
    llm = scripted(ScriptedLLM, lambda conversation: "  ", magpie_pre_query_template="qwen2")
    task = Magpie(llm=llm)
    (row,) = next(task.process([{}]))
    assert (row["instruction"], row["response"]) == (None, None)
    assert row["potstill_metadata"][f"error_{task.name}"] == "the model wrote an empty user message"
