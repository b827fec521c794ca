"""`examples/quickstart.py`, the README's main job, run as a user runs it (a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from potstill.distiset import Distiset

pytest.importorskip("llama_cpp")

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart.py"


def test_quickstart_writes_a_dataset_and_prints_rows(tmp_path: Path) -> None:
    output = tmp_path / "dataset"
    env = dict(os.environ)
    env.pop("POTSTILL_PROGRESS", None)  # the quickstart shows its progress
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [
            sys.executable,
            str(QUICKSTART),
            str(output),
            "--limit",
            "2",
            "--max-new-tokens",
            "12",
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

    rows = Distiset.load_from_disk(output)["default"]["train"]
    assert rows["instruction"] == [
        "Give me three tips for staying healthy.",
        "Explain what a rainbow is in one sentence.",
    ]
    assert all(isinstance(text, str) and len(text.split()) >= 3 for text in rows["generation"])
    assert set(rows["model_name"]) == {"SmolLM2-135M-Instruct.Q4_1.gguf"}

    printed = result.stdout
    assert "Generated 2 rows in" in printed and str(output) in printed
    assert "Instruction: Give me three tips for staying healthy." in printed
    assert rows["generation"][0].strip()[:20] in " ".join(printed.split())
    shown = result.stderr  # logs and the progress display go to stderr
    assert "text_generation_0" in shown and "2/2" in shown
