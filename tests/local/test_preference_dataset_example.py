"""`examples/preference_dataset.py`: a DPO dataset on the embedded model, run as a user runs it.

The run is short (2 instructions, few tokens), so SmolLM2's verdicts are checked for their
shape, not their content; the script's own accounting of pairs is checked on made-up rows.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from potstill.distiset import Distiset
from potstill.llms.llamacpp import EMBEDDED_MODEL_FILENAME

pytest.importorskip("llama_cpp")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "preference_dataset.py"

DPO_COLUMNS = [
    "prompt",
    "prompt_id",
    "chosen",
    "chosen_rating",
    "chosen_model",
    "rejected",
    "rejected_rating",
    "rejected_model",
]


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("preference_dataset", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_writes_a_dpo_dataset_and_reports_its_pairs(tmp_path: Path) -> None:
    output = tmp_path / "dataset"
    env = dict(os.environ)
    env.pop("POTSTILL_PROGRESS", None)  # the example shows its progress
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [
            sys.executable,
            str(EXAMPLE),
            str(output),
            "--limit",
            "2",
            "--max-new-tokens",
            "24",
            "--judge-max-new-tokens",
            "48",
            "--n-threads",
            "1",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr

    rows = Distiset.load_from_disk(output)["default"]["train"]
    assert rows.column_names == [
        "seed_instruction",
        "instruction",
        "generations",
        "generation_models",
        "ratings",
        "rationales",
        *DPO_COLUMNS,
    ]
    assert rows["seed_instruction"] == [
        "Give me three tips for staying healthy.",
        "Explain what a rainbow is.",
    ]
    example = load_example()
    for row in rows:
        # The evolved instruction is the prompt, and both samplers answered it.
        assert isinstance(row["instruction"], str) and row["instruction"].strip()
        assert row["prompt"] == row["instruction"]
        assert row["prompt_id"] == hashlib.sha256(row["prompt"].encode()).hexdigest()
        assert len(row["generations"]) == 2
        assert all(isinstance(g, str) and g.strip() for g in row["generations"])
        assert row["generation_models"] == [EMBEDDED_MODEL_FILENAME] * 2
        # One rating per answer, each 1 to 5 or None (a verdict SmolLM2 did not write).
        assert len(row["ratings"]) == 2
        assert all(r is None or 1 <= r <= 5 for r in row["ratings"])
        rated = [r for r in row["ratings"] if r is not None]
        if rated:
            assert row["chosen_rating"] == max(rated) and row["rejected_rating"] == min(rated)
            assert row["chosen"][0] == {"role": "user", "content": row["prompt"]}
            assert row["chosen"][1]["content"] in row["generations"]
            assert row["chosen_model"] == EMBEDDED_MODEL_FILENAME
        else:
            assert row["chosen"] is None and row["rejected"] is None

    printed = result.stdout
    assert "Generated 2 rows in" in printed and str(output) in printed
    assert "Prompt: " in printed and "(evolved from: " in printed
    kinds = [example.pair_kind(row) for row in rows]
    counts = re.search(
        r"pairs \(two different ratings\): (\d+) of 2 rows; (\d+) with .*, (\d+) "
        r"without",
        " ".join(printed.split()),
    )
    assert counts is not None, printed
    assert [int(n) for n in counts.groups()] == [kinds.count(k) for k in ("pair", "tie", "unrated")]
    shown = result.stderr  # logs and the progress display go to stderr
    for step in ("evol_instruct_0", "answer_careful", "answer_free", "judge"):
        assert step in shown
    assert "format_text_generation_dpo_0" in shown and "2/2" in shown


ANSWERS = ["Sleep lets the body rest.", "Because."]


def made_up_row(ratings: list[Any]) -> dict[str, Any]:
    from potstill.steps import FormatTextGenerationDPO

    dpo = FormatTextGenerationDPO()
    dpo.load()
    row = {
        "seed_instruction": "Why do we need sleep?",
        "instruction": "Why do people need sleep, in two sentences?",
        "generations": ANSWERS,
        "ratings": ratings,
    }
    return next(dpo.process([row]))[0]


@pytest.mark.parametrize(
    ("ratings", "kind", "shown"),
    [
        (
            [4, 2],
            "pair",
            ["chosen (rating 4, answer_careful):", "rejected (rating 2, answer_free):"],
        ),
        (
            [1, 5],
            "pair",
            ["chosen (rating 5, answer_free):", "rejected (rating 1, answer_careful):"],
        ),
        ([3, 3], "tie", ["chosen = rejected (rating 3, answer_careful):"]),
        ([None, 2], "tie", ["chosen = rejected (rating 2, answer_free):"]),
        ([None, None], "unrated", ["No rating could be read: no pair."]),
    ],
)
def test_rows_are_counted_and_shown_by_what_the_judge_gave(
    ratings: list[Any], kind: str, shown: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    example = load_example()
    row = made_up_row(ratings)
    assert example.pair_kind(row) == kind
    example.show(row)
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert lines[0] == "Prompt: Why do people need sleep, in two sentences?"
    # The row's own lines are indented by two spaces, the answers by four.
    labels = [line[2:] for line in lines if line.startswith("  ") and line[2] != " "]
    assert labels == ["(evolved from: Why do we need sleep?)", f"ratings: {ratings}", *shown]
