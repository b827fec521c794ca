"""The judge and scorer tasks: their prompts, columns and options, and how their parsers
read well-formed, partly malformed and garbage answers (types and ranges checked)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import pytest
from pydantic import ValidationError
from tests.core.fakes import EchoLLM

from potstill.steps.base import _Step
from potstill.steps.tasks import ComplexityScorer, PrometheusEval, QualityScorer, UltraFeedback
from potstill.steps.tasks._scoring import JudgeTask
from potstill.steps.tasks.prometheus_eval import DEFAULT_RUBRICS

LLM = EchoLLM(model="judge")
PAIR = {"instruction": "What is 2 + 2?", "generations": ["4", "5"]}


def parsed(task: JudgeTask, output: Optional[str], row: dict[str, Any]) -> tuple[dict, list]:
    columns = task.format_output(output, row)
    return dict(columns), list(getattr(columns, "problems", []))


def check_scale(values: list[Any], kind: type, low: float, high: float) -> None:
    for value in values:
        assert value is None or (type(value) is kind and low <= value <= high), values


# -- UltraFeedback ---------------------------------------------------------------------------

UF_WELL_FORMED = """#### Output for Text 1
Rating: 5
Rationale: Correct and concise.

#### Output for Text 2
Rating: 1
Rationale: Wrong: 2 + 2 is 4."""

UF_TYPES_WELL_FORMED = """#### Output for Text 1
Type: 1, 2
Rationale: Clear and relevant.
Rating: 4
Rationale: Accurate.

#### Output for Text 2
Type: None
Rationale: Off the mark.
Rating: 1
Rationale: Incorrect."""


def test_ultrafeedback_columns_per_aspect() -> None:
    assert UltraFeedback(llm=LLM).aspect == "overall-rating"
    assert UltraFeedback(llm=LLM).inputs == ["instruction", "generations"]
    for aspect in ("honesty", "instruction-following", "overall-rating"):
        assert UltraFeedback(llm=LLM, aspect=aspect).outputs == [
            "ratings",
            "rationales",
            "model_name",
        ]
    for aspect in ("helpfulness", "truthfulness"):
        assert UltraFeedback(llm=LLM, aspect=aspect).outputs == [
            "types",
            "rationales",
            "ratings",
            "rationales-for-ratings",
            "model_name",
        ]
    with pytest.raises(ValidationError, match="aspect"):
        UltraFeedback(llm=LLM, aspect="kindness")


@pytest.mark.parametrize(
    ("aspect", "title"),
    [
        ("helpfulness", "# Informativeness / Helpfulness Assessment"),
        ("honesty", "# Honesty and Uncertainty Expression Assessment"),
        ("instruction-following", "# Instruction Following Assessment"),
        ("truthfulness", "# Truthfulness and Hallucination Assessment"),
        ("overall-rating", "# General Text Quality Assessment"),
    ],
)
def test_ultrafeedback_prompt_structure(aspect: str, title: str) -> None:
    system, user = UltraFeedback(llm=LLM, aspect=aspect).format_input(PAIR)

    assert system["role"] == "system" and "2 texts" in system["content"]
    prompt = user["content"]
    assert prompt.startswith(title)
    assert "\n5. **" in prompt and "\n6. " not in prompt  # a 1-to-5 scale
    format_part, annotation = prompt.split("## Annotation")
    assert "#### Output for Text 1\n" in format_part and "#### Output for Text 2\n" in format_part
    assert ("\nType: [" in format_part) == (aspect in ("helpfulness", "truthfulness"))
    assert annotation.endswith(
        "Instruction: What is 2 + 2?\n\nTexts:\n<text 1> 4\n<text 2> 5\n\n### Output\n"
    )


def test_ultrafeedback_parses_a_well_formed_answer() -> None:
    columns, problems = parsed(UltraFeedback(llm=LLM, aspect="honesty"), UF_WELL_FORMED, PAIR)

    assert columns == {
        "ratings": [5, 1],
        "rationales": ["Correct and concise.", "Wrong: 2 + 2 is 4."],
    }
    assert problems == []


def test_ultrafeedback_parses_types_and_both_rationales() -> None:
    task = UltraFeedback(llm=LLM, aspect="helpfulness")
    columns, problems = parsed(task, UF_TYPES_WELL_FORMED, PAIR)

    assert columns == {
        "types": [1, None],  # the first type named; "None" names none
        "rationales": ["Clear and relevant.", "Off the mark."],
        "ratings": [4, 1],
        "rationales-for-ratings": ["Accurate.", "Incorrect."],
    }
    assert problems == []
    check_scale(columns["types"], int, 1, 3)
    check_scale(columns["ratings"], int, 1, 5)


@pytest.mark.parametrize(
    "answer",
    [
        # markdown labels, "4/5", no headings (sections cut at each rating)
        "**Rating:** 4/5\n**Rationale:** Fine.\n\nRating: [2]\nRationale: Weak.",
        # other headings, a rationale over two lines
        "**Text 1:**\nRating: 4\nRationale: Fine.\n\n**Text 2:**\nRating: 2 (weak)\nRationale: Weak.",
    ],
)
def test_ultrafeedback_tolerates_format_drift(answer: str) -> None:
    columns, problems = parsed(UltraFeedback(llm=LLM), answer, PAIR)

    assert columns["ratings"] == [4, 2]
    assert columns["rationales"] == ["Fine.", "Weak."]
    assert problems == []


def test_ultrafeedback_partly_malformed_answer_keeps_what_it_can() -> None:
    answer = (
        "#### Output for Text 1\nRating: 7\nRationale: Too generous.\n\n"
        "#### Output for Text 2\nRating: 3\nRationale: Fine.\n\n"
        "#### Output for Text 3\nRating: N/A\nRationale: Creative writing."
    )
    row = {"instruction": "i", "generations": ["a", "b", "c", "d"]}
    columns, problems = parsed(UltraFeedback(llm=LLM), answer, row)

    assert columns["ratings"] == [None, 3, None, None]  # 7 is off the scale: None, not 7
    assert columns["rationales"] == ["Too generous.", "Fine.", "Creative writing.", None]
    assert problems == [
        "rating of text 1 '7' is not a whole number from 1 to 5",
        "no assessment of text 4",
    ]  # N/A is a valid way to decline, not a problem


@pytest.mark.parametrize(
    "answer",
    [
        "I think both texts are fine.",
        "",
        "#### Output for Text 1\nRating: [Rating for text 1]\nRationale: [Rationale]",
        "Rating: 4.5\nRationale: half points",
    ],
)
def test_ultrafeedback_garbage_gives_aligned_nones(answer: str) -> None:
    columns, problems = parsed(UltraFeedback(llm=LLM, aspect="truthfulness"), answer, PAIR)

    assert columns["ratings"] == [None, None]
    assert columns["types"] == [None, None]
    assert len(columns["rationales-for-ratings"]) == 2
    assert problems


def test_ultrafeedback_failed_generation_gives_nones_without_a_parse_problem() -> None:
    columns, problems = parsed(UltraFeedback(llm=LLM), None, PAIR)

    assert columns == {"ratings": [None, None], "rationales": [None, None]}
    assert problems == []


# -- PrometheusEval --------------------------------------------------------------------------


def test_prometheus_inputs_by_mode_and_reference() -> None:
    def inputs(mode: str, reference: bool) -> Any:
        return PrometheusEval(llm=LLM, mode=mode, rubric="honesty", reference=reference).inputs

    assert inputs("absolute", False) == ["instruction", "generation"]
    assert inputs("absolute", True) == ["instruction", "generation", "reference"]
    assert inputs("relative", False) == ["instruction", "generations"]
    assert inputs("relative", True) == ["instruction", "generations", "reference"]
    task = PrometheusEval(llm=LLM, mode="absolute", rubric="honesty")
    assert task.outputs == ["feedback", "result", "model_name"]
    assert set(task.rubrics or {}) == {
        "helpfulness",
        "harmlessness",
        "honesty",
        "factual-validity",
        "reasoning",
    }


def test_prometheus_rubric_checks_name_the_value_and_the_fix() -> None:
    with pytest.raises(ValidationError, match="'kindness' is not one of the rubrics"):
        PrometheusEval(llm=LLM, mode="absolute", rubric="kindness")
    with pytest.raises(ValidationError, match=r"rubric 'mine' .* does not have the rubric format"):
        PrometheusEval(llm=LLM, mode="absolute", rubric="mine", rubrics={"mine": "Be nice."})
    with pytest.raises(ValidationError, match="mode"):
        PrometheusEval(llm=LLM, mode="pairwise", rubric="honesty")


def test_prometheus_custom_rubric_reaches_the_prompt() -> None:
    rubric = "[Is it short?]\n" + "\n".join(f"Score {n}: level {n}." for n in range(1, 6))
    task = PrometheusEval(llm=LLM, mode="absolute", rubric="brevity", rubrics={"brevity": rubric})

    _, user = task.format_input({"instruction": "Say hi.", "generation": "Hi."})

    assert f"###Score Rubrics:\n{rubric}\n\n###Feedback:" in user["content"]


@pytest.mark.parametrize("reference", [False, True])
def test_prometheus_absolute_prompt_structure(reference: bool) -> None:
    task = PrometheusEval(llm=LLM, mode="absolute", rubric="helpfulness", reference=reference)
    row = {"instruction": "Say hi.", "generation": "Hello!", "reference": "Hi!"}

    system, user = task.format_input(row)

    assert system["role"] == "system"
    prompt = user["content"]
    headers = [line for line in prompt.splitlines() if line.startswith("###")]
    expected = ["###Task Description:", "###The instruction to evaluate:"]
    expected += ["###Response to evaluate:"]
    expected += ["###Reference Answer (Score 5):"] if reference else []
    expected += ["###Score Rubrics:", "###Feedback: "]
    assert headers == expected
    assert "[RESULT] (an integer from 1 to 5)" in prompt
    assert DEFAULT_RUBRICS["helpfulness"] in prompt
    assert ("Hi!" in prompt) == reference


@pytest.mark.parametrize("reference", [False, True])
def test_prometheus_relative_prompt_structure(reference: bool) -> None:
    task = PrometheusEval(llm=LLM, mode="relative", rubric="reasoning", reference=reference)
    row = {"instruction": "Say hi.", "generations": ["Hello!", "Bye."], "reference": "Hi!"}

    prompt = task.format_input(row)[1]["content"]

    headers = [line for line in prompt.splitlines() if line.startswith("###")]
    expected = ["###Task Description:", "###Instruction:", "###Response A:", "###Response B:"]
    expected += ["###Reference Answer:"] if reference else []
    expected += ["###Score Rubric:", "###Feedback: "]
    assert headers == expected
    assert "###Response A:\nHello!\n\n###Response B:\nBye." in prompt
    assert "[RESULT] (A or B)" in prompt


@pytest.mark.parametrize(
    ("answer", "feedback", "result"),
    [
        ("Feedback: Helpful and clear. [RESULT] 4", "Helpful and clear.", 4),
        ("Helpful and clear.\n[RESULT] 5", "Helpful and clear.", 5),
        ("###Feedback: Fine. [RESULT]: **3**\n\nFine. [RESULT] 5", "Fine.", 3),  # the first
        ("Fine. [result] 2/5", "Fine.", 2),
    ],
)
def test_prometheus_absolute_parses_feedback_and_score(
    answer: str, feedback: str, result: int
) -> None:
    task = PrometheusEval(llm=LLM, mode="absolute", rubric="honesty")
    columns, problems = parsed(task, answer, {})

    assert columns == {"feedback": feedback, "result": result}
    assert type(columns["result"]) is int
    assert problems == []


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ("Great. [RESULT] 6", "'6' is not a whole number from 1 to 5"),
        ("Great. [RESULT] 0", "'0' is not a whole number from 1 to 5"),
        ("Great. [RESULT] 4.5", "'4.5' is not a whole number from 1 to 5"),
        ("Great. [RESULT] excellent", "is not a number"),
        ("Great. [RESULT]", "no score after [RESULT]"),
        ("Great, I would give it a 5.", "no [RESULT] in the answer"),
        ("", "no [RESULT] in the answer"),
    ],
)
def test_prometheus_absolute_malformed_and_garbage(answer: str, problem: str) -> None:
    task = PrometheusEval(llm=LLM, mode="absolute", rubric="honesty")
    columns, problems = parsed(task, answer, {})

    assert columns == {"feedback": None, "result": None}
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize(
    ("answer", "result"),
    [
        ("Response A is more accurate. [RESULT] A", "A"),
        ("B is better. [RESULT] (B)", "B"),
        ("B is better. [RESULT] Response B.", "B"),
        ("B is better. [RESULT] **B**", "B"),
    ],
)
def test_prometheus_relative_parses_the_choice(answer: str, result: str) -> None:
    task = PrometheusEval(llm=LLM, mode="relative", rubric="honesty")
    columns, problems = parsed(task, answer, {})

    assert columns["result"] == result and problems == []


@pytest.mark.parametrize(
    "answer",
    ["Both. [RESULT] A or B", "Hmm. [RESULT] C", "Hmm. [RESULT] 1", "They are equal.", ""],
)
def test_prometheus_relative_malformed_and_garbage(answer: str) -> None:
    task = PrometheusEval(llm=LLM, mode="relative", rubric="honesty")
    columns, problems = parsed(task, answer, {})

    assert columns == {"feedback": None, "result": None} and problems


def test_prometheus_bad_inputs_name_the_column() -> None:
    relative = PrometheusEval(llm=LLM, mode="relative", rubric="honesty")
    with pytest.raises(ValueError, match="`generations` must hold exactly 2 texts, got 3"):
        relative.format_input({"instruction": "i", "generations": ["a", "b", "c"]})
    absolute = PrometheusEval(llm=LLM, mode="absolute", rubric="honesty", reference=True)
    with pytest.raises(ValueError, match="column `reference` must be a string, got NoneType"):
        absolute.format_input({"instruction": "i", "generation": "a", "reference": None})


# -- Deita scorers ---------------------------------------------------------------------------


def test_complexity_scorer_prompt_and_columns() -> None:
    task = ComplexityScorer(llm=LLM)
    (user,) = task.format_input({"instructions": ["Say hi.", "Prove Fermat's last theorem."]})

    assert task.inputs == ["instructions"] and task.outputs == ["scores", "model_name"]
    prompt = user["content"]
    assert "from 1 to 2" in prompt and "score of 3" in prompt
    assert "[1] Score: 1\n[2] Score: 2\n" in prompt
    assert prompt.endswith("[1] Say hi.\n[2] Prove Fermat's last theorem.")


def test_quality_scorer_prompt_and_columns() -> None:
    task = QualityScorer(llm=LLM)
    row = {"instruction": "Say hi.", "responses": ["Hi!", "Go away.", "Hello there!"]}

    (user,) = task.format_input(row)

    assert task.inputs == ["instruction", "responses"]
    assert task.outputs == ["scores", "model_name"]
    prompt = user["content"]
    assert "from 1 to 3" in prompt and "keep 4 for" in prompt
    assert prompt.endswith(
        "#Question#: Say hi.\n#Response List#:\n[1] Hi!\n[2] Go away.\n[3] Hello there!"
    )


DEITA = [
    (ComplexityScorer, {"instructions": ["a", "b", "c"]}),
    (QualityScorer, {"instruction": "i", "responses": ["a", "b", "c"]}),
]


@pytest.mark.parametrize(("task_class", "row"), DEITA)
def test_deita_scores_well_formed(task_class: type, row: dict[str, Any]) -> None:
    answer = "[1] Score: 2\n[2] Score: 4\n[3] Score: 1"
    columns, problems = parsed(task_class(llm=LLM), answer, row)

    assert columns == {"scores": [2.0, 4.0, 1.0]}
    assert all(type(score) is float for score in columns["scores"])
    assert problems == []


@pytest.mark.parametrize(("task_class", "row"), DEITA)
def test_deita_scores_partly_malformed(task_class: type, row: dict[str, Any]) -> None:
    # out of order, markdown, a score above N + 1, one item missing, chatter around
    answer = "Here you go:\n**[3] Score:** 3.5\n[1] score: 9\nThat's all."
    columns, problems = parsed(task_class(llm=LLM), answer, row)

    assert columns == {"scores": [None, None, 3.5]}
    check_scale(columns["scores"], float, 1, 4)
    assert problems == ["score for item 1 9 is outside 1 to 4", "no score for item 2"]


@pytest.mark.parametrize(("task_class", "row"), DEITA)
@pytest.mark.parametrize("answer", ["The first one is the hardest.", "", "[1] Score: high"])
def test_deita_scores_garbage(task_class: type, row: dict[str, Any], answer: str) -> None:
    columns, problems = parsed(task_class(llm=LLM), answer, row)

    assert columns == {"scores": [None, None, None]}
    assert problems


@pytest.mark.parametrize(("task_class", "row"), DEITA)
def test_deita_failed_generation(task_class: type, row: dict[str, Any]) -> None:
    assert parsed(task_class(llm=LLM), None, row) == ({"scores": [None] * 3}, [])


# -- shared behaviour ------------------------------------------------------------------------


def test_unparseable_answer_keeps_the_row_the_raw_answer_and_the_reason() -> None:
    """EchoLLM answers with the prompt itself: a judge answer no parser can read."""
    task = UltraFeedback(name="uf", llm=EchoLLM(model="judge"))
    task.load()

    (row,) = next(task.process([dict(PAIR)]))

    assert row["ratings"] == [None, None] and row["model_name"] == "judge"
    metadata = row["potstill_metadata"]
    assert metadata["raw_output_uf"].startswith("# General Text Quality Assessment")
    # the echoed prompt's own format section has placeholders where the ratings go
    assert metadata["error_uf"] == (
        "could not parse the answer: rating of text 1 '[Rating for text 1]' is not a number; "
        "rating of text 2 '[Rating for text 2]' is not a number"
    )


def test_bad_input_row_gives_none_columns_and_names_the_column() -> None:
    task = UltraFeedback(name="uf", llm=EchoLLM(model="judge"))
    task.load()

    good, bad = next(task.process([dict(PAIR), {"instruction": "i", "generations": "a"}]))

    assert bad["ratings"] is None and bad["rationales"] is None
    assert "column `generations` must be a list of strings" in bad["potstill_metadata"]["error_uf"]
    assert good["potstill_metadata"]["error_uf"] is not None  # the echo: unparseable


def test_judges_round_trip_through_yaml(tmp_path: Path) -> None:
    rubric = "[Is it short?]\n" + "\n".join(f"Score {n}: level {n}." for n in range(1, 6))
    tasks = [
        UltraFeedback(name="uf", llm=LLM, aspect="honesty"),
        PrometheusEval(
            name="p", llm=LLM, mode="relative", rubric="brevity", rubrics={"brevity": rubric}
        ),
        ComplexityScorer(name="c", llm=LLM),
        QualityScorer(name="q", llm=LLM),
    ]
    for task in tasks:
        loaded = _Step.from_file(task.save(tmp_path / f"{task.name}.yaml", format="yaml"))

        assert type(loaded) is type(task) and loaded.dump() == task.dump()
        assert loaded.outputs == task.outputs and loaded.inputs == task.inputs
