"""Each judge task in a pipeline, through the real OpenAI SDK against the loopback server,
which answers judge prompts with scripted verdicts (`tests/fake_server/judges.py`): known
questions give parsed scores, an unknown one gets the echo, which must come out as `None`
scores with the raw answer and the reason kept in `potstill_metadata`."""

from __future__ import annotations

from typing import Any

import pytest
from tests.fake_server import FakeServer

from potstill.llms import OpenAILLM
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import (
    ComplexityScorer,
    PrometheusEval,
    QualityScorer,
    Task,
    UltraFeedback,
)
from potstill.steps.tasks.base import METADATA_COLUMN

SPAIN = "What's the capital of Spain?"
UNKNOWN = "Which river is the longest?"  # the server knows no answer: it echoes


def run(
    task_class: type[Task], rows: list[dict[str, Any]], **fields: Any
) -> tuple[Task, list[dict[str, Any]]]:
    """Runs `LoadDataFromDicts(rows) >> task_class(**fields)` with an OpenAILLM judge."""
    with Pipeline(name="judge") as pipeline:
        task = task_class(llm=OpenAILLM(model="gpt-4o"), **fields)
        LoadDataFromDicts(data=rows) >> task
    return task, list(pipeline.run()["default"]["train"])


def judge_requests(server: FakeServer) -> list[list[dict[str, Any]]]:
    return [r.body["messages"] for r in server.requests if r.path.endswith("/chat/completions")]


def assert_unparsed(row: dict[str, Any], task: Task) -> None:
    metadata = row[METADATA_COLUMN]
    assert metadata[f"raw_output_{task.name}"].startswith("Echo: ")
    assert metadata[f"error_{task.name}"].startswith("could not parse the answer: ")


@pytest.mark.parametrize("aspect", ["truthfulness", "instruction-following"])
def test_ultrafeedback_pipeline(openai_env: FakeServer, aspect: str) -> None:
    rows = [
        {"instruction": SPAIN, "generations": ["Madrid.", "Barcelona.", "It's Madrid!"]},
        {"instruction": UNKNOWN, "generations": ["The Nile.", "The Amazon."]},
    ]

    task, (known, unknown) = run(UltraFeedback, rows, name="uf", aspect=aspect)

    assert known["ratings"] == [5, 2, 5]
    assert known["rationales-for-ratings" if aspect == "truthfulness" else "rationales"][1] == (
        "Text 2 does not give the right answer (Madrid)."
    )
    if aspect == "truthfulness":
        assert known["types"] == [None, 1, None]  # a factual error in text 2
    assert known["model_name"] == "gpt-4o"
    assert known[METADATA_COLUMN]["error_uf"] is None
    assert unknown["ratings"] == [None, None]
    assert_unparsed(unknown, task)
    [(system, user)] = [m for m in judge_requests(openai_env) if SPAIN in m[1]["content"]]
    assert system["role"] == "system" and "3 texts" in system["content"]
    assert "<text 2> Barcelona." in user["content"]


def test_prometheus_absolute_pipeline_with_reference(openai_env: FakeServer) -> None:
    rows = [
        {"instruction": SPAIN, "generation": "Madrid.", "reference": "Madrid"},
        {"instruction": SPAIN, "generation": "Seville.", "reference": "Madrid"},
        {"instruction": UNKNOWN, "generation": "The Nile.", "reference": "The Nile"},
    ]

    task, (right, wrong, unknown) = run(
        PrometheusEval, rows, mode="absolute", rubric="factual-validity", reference=True
    )

    assert (right["result"], wrong["result"]) == (5, 2)
    assert right["feedback"] == "The response gives the right answer (Madrid)."
    assert (unknown["feedback"], unknown["result"]) == (None, None)
    assert_unparsed(unknown, task)
    prompts = [messages[1]["content"] for messages in judge_requests(openai_env)]
    assert sum("###Reference Answer (Score 5):\nMadrid\n" in p for p in prompts) == 2


def test_prometheus_relative_pipeline(openai_env: FakeServer) -> None:
    rows = [
        {"instruction": SPAIN, "generations": ["Madrid.", "Toledo."]},
        {"instruction": SPAIN, "generations": ["Toledo.", "Madrid."]},
        {"instruction": UNKNOWN, "generations": ["The Nile.", "The Amazon."]},
    ]

    task, (first, second, unknown) = run(
        PrometheusEval, rows, mode="relative", rubric="helpfulness"
    )

    assert (first["result"], second["result"], unknown["result"]) == ("A", "B", None)
    assert_unparsed(unknown, task)


def test_quality_scorer_pipeline(openai_env: FakeServer) -> None:
    rows = [
        {"instruction": "What is 2 + 2?", "responses": ["4", "22", "It is 4."]},
        {"instruction": UNKNOWN, "responses": ["The Nile."]},
    ]

    task, (known, unknown) = run(QualityScorer, rows)

    assert known["scores"] == [3.0, 1.0, 3.0]
    assert unknown["scores"] == [None]
    assert_unparsed(unknown, task)


def test_complexity_scorer_pipeline(openai_env: FakeServer) -> None:
    questions = [
        "Derive the Navier-Stokes equations from first principles.",
        "Say hi.",
        "Name three rivers.",
    ]

    task, (row,) = run(ComplexityScorer, [{"instructions": questions}])

    assert row["scores"] == [3.0, 1.0, 2.0]  # the server ranks by length
    assert row[METADATA_COLUMN][f"error_{task.name}"] is None
    assert judge_requests(openai_env)[0][0]["content"].endswith(
        "[1] Derive the Navier-Stokes equations from first principles.\n[2] Say hi.\n"
        "[3] Name three rivers."
    )
