"""The pipeline package's shape: exceptions live in `potstill.errors` (old import paths still
work), the writer thread takes typed messages, and no pipeline module outgrows one job."""

from __future__ import annotations

import ast
import json
import time
from pathlib import Path

import pytest

import potstill
from potstill import errors
from potstill.pipeline import batch_writer
from potstill.pipeline.batch_writer import MarkComplete, WriteBatch, WriteConfig, perform
from potstill.pipeline.run_folder import RunFolder
from potstill.pipeline.step_batches import BatchToWrite
from potstill.utils.append_log import read_lines, unseal

SRC = Path(potstill.__file__).resolve().parent
MAX_LINES = 500


def _exception_classes(path: Path) -> list[str]:
    """Classes in `path` whose name or a base's name says it is an exception."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.ClassDef):
            continue
        bases = [ast.unparse(base).rsplit(".", 1)[-1] for base in node.bases]
        if node.name.endswith("Error") or any(
            base.endswith(("Error", "Exception")) for base in bases
        ):
            found.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}")
    return found


def test_every_exception_class_is_defined_in_errors_py() -> None:
    elsewhere = [
        found
        for path in sorted(SRC.rglob("*.py"))
        if path != SRC / "errors.py"
        for found in _exception_classes(path)
    ]
    assert elsewhere == [], "define these in potstill/errors.py (and import them back)"


def test_exceptions_keep_their_old_import_paths() -> None:
    from potstill.llms.llamacpp_check import LlamaCppBuildError
    from potstill.pipeline.engine import PipelineRunError

    assert PipelineRunError is errors.PipelineRunError
    assert LlamaCppBuildError is errors.LlamaCppBuildError


def test_no_pipeline_module_is_over_500_lines() -> None:
    folders = [SRC / "pipeline", SRC / "cli"]
    sizes = {
        str(path.relative_to(SRC)): len(path.read_text(encoding="utf-8").splitlines())
        for folder in folders
        for path in folder.rglob("*.py")
    }
    sizes["distiset.py"] = len((SRC / "distiset.py").read_text(encoding="utf-8").splitlines())
    assert {name: lines for name, lines in sizes.items() if lines > MAX_LINES} == {}


def _manifest(folder: Path) -> list[dict]:
    return [json.loads(unseal(line) or b"") for line in read_lines(folder / "manifest.jsonl")]


def test_the_writer_groups_consecutive_batches_and_completes_after_them(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    step = folder.step_batches("step", "0123")

    def batch(seq: int) -> BatchToWrite:
        return BatchToWrite(seq, [{"n": seq}], f"id{seq}", None, 0)

    errors_found = perform(
        [
            WriteConfig(folder, {"pipeline": {"name": "p"}}),
            WriteBatch(step, batch(1)),
            WriteBatch(step, batch(0)),
            WriteBatch(step, batch(3)),
            MarkComplete(step, 4, 4),  # batch 2 was queued after it: it does not wait for it
            WriteBatch(step, batch(2)),
        ]
    )

    assert errors_found == []
    folder.close()
    assert (tmp_path / "pipeline.yaml").exists()
    records = _manifest(step.path)
    assert [record.get("file") or record for record in records] == [
        "000000-000001.arrow",  # 0 and 1 arrived out of order: one file all the same
        "000003.arrow",
        {"complete": {"batches": 4, "rows": 4}},
        "000002.arrow",
    ]
    assert [row["n"] for seq in range(4) for row in step.read(seq)] == [0, 1, 2, 3]


def test_a_failed_write_costs_only_itself(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    step = folder.step_batches("step", "0123")
    mixed = BatchToWrite(0, [{"x": 1}, {"x": "one"}], "id0", None, 0)  # two types in a column
    fine = BatchToWrite(1, [{"x": 2}], "id1", None, 0)

    found = perform([WriteBatch(step, mixed), WriteBatch(step, fine), MarkComplete(step, 2, 3)])

    assert [type(error) for error in found] == [errors.BatchWriteError]
    assert "Step 'step' produced batch 0" in str(found[0])
    assert step.stored_batches() == [1]
    folder.close()


def test_batches_finished_close_together_go_to_one_file_and_flush_writes_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch_writer, "COALESCE_S", 5.0)
    folder = RunFolder(tmp_path)
    step = folder.step_batches("step", "0123")

    folder.submit(step, BatchToWrite(0, [{"n": 0}], "id0", None, 0))
    time.sleep(0.05)  # the writer is awake by now, and waits for more
    folder.submit(step, BatchToWrite(1, [{"n": 1}], "id1", None, 0))
    folder.submit(step, BatchToWrite(2, [{"n": 2}], "id2", None, 0))
    started = time.monotonic()
    folder.flush()

    assert time.monotonic() - started < 4.0  # not the 5 s the writer would wait
    assert [record["file"] for record in _manifest(step.path)] == ["000000-000002.arrow"]
    folder.close()
