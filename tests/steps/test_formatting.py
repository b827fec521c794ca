"""Fine-tuning formats: FormatTextGenerationSFT/ChatGenerationSFT and
FormatTextGenerationDPO/ChatGenerationDPO (chosen and rejected by rating, ties, gaps)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from potstill.errors import PipelineValidationError, PotstillUserError
from potstill.pipeline import Pipeline
from potstill.steps import (
    FormatChatGenerationDPO,
    FormatChatGenerationSFT,
    FormatTextGenerationDPO,
    FormatTextGenerationSFT,
    LoadDataFromDicts,
)

QUESTION = "What's 2+2?"
QUESTION_ID = "7762ecf17ad41479767061a8f4a7bfa3b63d371672af5180872f9b82b4cd4e29"


def first(step: Any, *batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    step.load()
    return next(step.process(*batches))


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def test_prompt_id_is_the_sha256_of_the_prompt() -> None:
    row = first(FormatTextGenerationSFT(), [{"instruction": QUESTION, "generation": "4"}])[0]

    assert row["prompt_id"] == QUESTION_ID == hashlib.sha256(QUESTION.encode()).hexdigest()


# -- SFT ---------------------------------------------------------------------------------------


def test_text_generation_sft_builds_the_conversation() -> None:
    rows = [
        {"instruction": QUESTION, "generation": "4"},
        {"instruction": QUESTION, "generation": "4", "system_prompt": "Be brief."},
        {"instruction": QUESTION, "generation": "4", "system_prompt": ""},
    ]

    out = first(FormatTextGenerationSFT(), rows)

    assert out[0]["prompt"] == QUESTION
    assert out[0]["messages"] == [user(QUESTION), assistant("4")]
    assert out[1]["messages"] == [
        {"role": "system", "content": "Be brief."},
        user(QUESTION),
        assistant("4"),
    ]
    assert out[2]["messages"] == [user(QUESTION), assistant("4")]  # an empty system prompt
    assert "messages" not in rows[0]  # the input rows are left as they were


def test_chat_generation_sft_appends_the_generation() -> None:
    conversation = [
        {"role": "system", "content": "S"},
        user("Hi"),
        assistant("Hello"),
        user("2+2?"),
    ]

    out = first(FormatChatGenerationSFT(), [{"messages": conversation, "generation": "4"}])[0]

    assert out["prompt"] == "Hi"  # the first user message
    assert out["messages"] == [*conversation, assistant("4")]
    assert len(conversation) == 4


def test_chat_generation_sft_needs_a_user_message() -> None:
    rows = [{"messages": [{"role": "system", "content": "S"}], "generation": "4"}]

    with pytest.raises(PotstillUserError, match="no user message"):
        first(FormatChatGenerationSFT(), rows)


def test_sft_names_a_missing_column() -> None:
    with pytest.raises(PotstillUserError, match="row 0 has no column 'generation'"):
        first(FormatTextGenerationSFT(), [{"instruction": QUESTION}])


# -- DPO ---------------------------------------------------------------------------------------


def dpo_row(ratings: list[Any], **extra: Any) -> dict[str, Any]:
    return {"instruction": QUESTION, "generations": ["4", "5", "6"], "ratings": ratings, **extra}


def test_text_generation_dpo_picks_the_best_and_the_worst() -> None:
    out = first(FormatTextGenerationDPO(), [dpo_row([1, 0, -1])])[0]

    assert out["prompt"] == QUESTION and out["prompt_id"] == QUESTION_ID
    assert out["chosen"] == [user(QUESTION), assistant("4")]
    assert out["chosen_rating"] == 1
    assert out["rejected"] == [user(QUESTION), assistant("6")]
    assert out["rejected_rating"] == -1
    assert "chosen_model" not in out  # no generation_models in the row


def test_dpo_ties_go_to_the_earliest_generation() -> None:
    step = FormatTextGenerationDPO()

    tie = first(step, [dpo_row([3, 5, 5, 1, 1], generations=["a", "b", "c", "d", "e"])])[0]
    assert tie["chosen"][-1]["content"] == "b"  # first of the two 5s
    assert tie["rejected"][-1]["content"] == "d"  # first of the two 1s

    same = first(step, [dpo_row([2, 2, 2])])[0]
    assert same["chosen"] == same["rejected"] == [user(QUESTION), assistant("4")]
    assert same["chosen_rating"] == same["rejected_rating"] == 2


def test_dpo_with_models_system_prompt_and_missing_ratings() -> None:
    rows = [
        dpo_row([None, 4, 2], generation_models=["m0", "m1", "m2"], system_prompt="Be exact."),
        dpo_row([None, None, None], generation_models=["m0", "m1", "m2"]),
    ]

    rated, unrated = first(FormatTextGenerationDPO(), rows)

    assert rated["chosen"] == [
        {"role": "system", "content": "Be exact."},
        user(QUESTION),
        assistant("5"),
    ]
    assert (rated["chosen_model"], rated["rejected_model"]) == ("m1", "m2")
    assert (rated["chosen_rating"], rated["rejected_rating"]) == (4, 2)
    assert unrated["chosen"] is None and unrated["rejected"] is None
    assert unrated["chosen_model"] is None and unrated["chosen_rating"] is None


def test_dpo_rejects_ratings_that_do_not_match_the_generations() -> None:
    with pytest.raises(PotstillUserError, match="3 generations but 2 ratings"):
        first(FormatTextGenerationDPO(), [dpo_row([1, 2])])
    with pytest.raises(PotstillUserError, match="'ratings' of row 0 must hold a list"):
        first(FormatTextGenerationDPO(), [dpo_row(5)])  # type: ignore[arg-type]


def test_chat_generation_dpo() -> None:
    conversation = [user("Hi"), assistant("Hello"), user(QUESTION)]
    row = {"messages": conversation, "generations": ["4", "5"], "ratings": [7.5, 9.0]}

    out = first(FormatChatGenerationDPO(), [row])[0]

    assert out["prompt"] == "Hi"
    assert out["chosen"] == [*conversation, assistant("5")]
    assert out["rejected"] == [*conversation, assistant("4")]
    assert first(FormatChatGenerationDPO(), []) == []


def test_dpo_in_a_pipeline_and_its_required_columns(tmp_path: Path) -> None:
    data = [dpo_row([i, 10 - i], generations=["4", "5"]) for i in range(4)]
    with Pipeline(name="dpo", cache_dir=tmp_path) as p:
        LoadDataFromDicts(data=data) >> FormatTextGenerationDPO(input_batch_size=3)

    rows = p.run(use_cache=False)["default"]["train"].to_list()

    assert [row["chosen_rating"] for row in rows] == [10, 9, 8, 7]
    assert {row["chosen"][-1]["content"] for row in rows} == {"5"}

    with Pipeline(name="dpo-missing", cache_dir=tmp_path) as p:
        LoadDataFromDicts(data=[{"instruction": "q", "generations": ["a"]}]) >> (
            FormatTextGenerationDPO()
        )
    with pytest.raises(PipelineValidationError, match="'ratings'") as error:
        p.run()
    assert "system_prompt" not in str(error.value)  # optional inputs are not demanded
