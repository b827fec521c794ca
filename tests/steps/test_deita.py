"""DeitaFiltering: DEITA scores, nearest-neighbour distances (cosine and manhattan), the
budget and the threshold, standalone and as a global step of a pipeline."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pytest

from potstill.errors import PipelineValidationError, PotstillUserError
from potstill.pipeline import Pipeline
from potstill.steps import DeitaFiltering, LoadDataFromDicts

# The three rows of distilabel's documented example.
ROWS = [
    {"evol_instruction_score": 0.5, "evol_response_score": 0.5, "embedding": [-8.12729941, -5.24642847, -6.34003029]},
    {"evol_instruction_score": 0.6, "evol_response_score": 0.6, "embedding": [2.99329242, 0.7800932, 0.7799726]},
    {"evol_instruction_score": 0.7, "evol_response_score": 0.7, "embedding": [10.29041806, 14.33088073, 13.00557506]},
]  # fmt: skip


def run(rows: list[dict[str, Any]], **fields: Any) -> list[dict[str, Any]]:
    step = DeitaFiltering(**fields)
    step.load()
    return next(step.process([dict(row) for row in rows]))


def test_the_documented_example() -> None:
    kept = run(ROWS, data_budget=1)

    assert len(kept) == 1
    assert kept[0]["embedding"] == ROWS[0]["embedding"]
    assert kept[0]["deita_score"] == pytest.approx(0.25)
    assert kept[0]["deita_score_computed_with"] == ["evol_instruction_score", "evol_response_score"]
    assert kept[0]["nearest_neighbor_distance"] == pytest.approx(1.9042812683723933)


def test_rows_come_best_first_and_the_budget_caps_them() -> None:
    kept = run(ROWS, data_budget=2, diversity_threshold=0.0)

    assert [row["deita_score"] for row in kept] == pytest.approx([0.49, 0.36])


def test_manhattan_distance_and_unnormalised_embeddings() -> None:
    rows = [
        {"evol_instruction_score": 1, "evol_response_score": 1, "embedding": [0.0, 0.0]},
        {"evol_instruction_score": 2, "evol_response_score": 1, "embedding": [3.0, 4.0]},
        {"evol_instruction_score": 3, "evol_response_score": 1, "embedding": [3.0, 5.0]},
    ]

    kept = run(
        rows,
        data_budget=3,
        diversity_threshold=0.0,
        normalize_embeddings=False,
        distance_metric="manhattan",
    )

    distances = {row["deita_score"]: row["nearest_neighbor_distance"] for row in kept}
    assert distances == {3: 1.0, 2: 1.0, 1: 7.0}
    assert run(rows, data_budget=3, diversity_threshold=2.0, normalize_embeddings=False,
               distance_metric="manhattan") == [kept[2]]  # fmt: skip


def test_missing_scores_fall_back_and_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    rows = [
        {"evol_instruction_score": 4, "evol_response_score": None, "embedding": [1.0, 0.0]},
        {"evol_instruction_score": None, "evol_response_score": 3, "embedding": [0.0, 1.0]},
        {"evol_instruction_score": None, "evol_response_score": None, "embedding": [-1.0, 0.0]},
    ]

    with caplog.at_level(logging.WARNING, logger="potstill.step"):
        kept = run(rows, data_budget=3, diversity_threshold=0.0)

    assert [(r["deita_score"], r["deita_score_computed_with"]) for r in kept] == [
        (4, ["evol_instruction_score"]),
        (3, ["evol_response_score"]),
        (0, []),
    ]
    assert sum("DEITA score uses" in message for message in caplog.messages) == 3


def test_edge_cases() -> None:
    single = run(ROWS[:1], data_budget=5)
    assert len(single) == 1 and math.isinf(single[0]["nearest_neighbor_distance"])
    assert run([], data_budget=5) == []
    zero = [{**ROWS[0], "embedding": [0.0, 0.0, 0.0]}, ROWS[1]]
    assert all(math.isfinite(r["nearest_neighbor_distance"]) for r in run(zero, data_budget=2))


def test_bad_input_is_named() -> None:
    with pytest.raises(PotstillUserError, match="needs `data_budget`"):
        run(ROWS)
    with pytest.raises(PotstillUserError, match=r"same length, got lengths \[2, 3\]"):
        run([ROWS[0], {**ROWS[1], "embedding": [1.0, 2.0]}], data_budget=1)
    with pytest.raises(PotstillUserError, match="no column 'embedding'"):
        run([{"evol_instruction_score": 1}], data_budget=1)
    with pytest.raises(ValueError, match="distance_metric"):
        DeitaFiltering(data_budget=1, distance_metric="euclidean")


def test_deita_filtering_in_a_pipeline(tmp_path: Path) -> None:
    with Pipeline(name="deita", cache_dir=tmp_path) as p:
        load = LoadDataFromDicts(data=ROWS * 2, batch_size=2)
        deita = DeitaFiltering(name="deita")
        load >> deita

    with pytest.raises(PipelineValidationError, match="'data_budget'"):
        p.run()
    # Each row has a twin (distance 0), so with threshold 0 the best two are the twins of 0.49.
    rows = p.run(params={"deita": {"data_budget": 2, "diversity_threshold": 0.0}}, use_cache=False)
    assert [row["deita_score"] for row in rows["default"]["train"]] == pytest.approx([0.49, 0.49])
    assert deita.get_runtime_parameters_info()[2]["name"] == "data_budget"  # after resources
