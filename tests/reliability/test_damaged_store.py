"""Damaged store files are detected, named, and recomputed: never returned as data."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from tests.fake_server import FakeServer
from tests.reliability.helpers import assert_exactly_once_and_aligned, generation_pipeline

ROWS = 30


def step_folder(pipeline, step_name: str) -> Path:
    [folder] = (pipeline.cache_dir / "steps").glob(f"{step_name}-*")
    return folder


def file_holding(folder: Path, text: bytes) -> Path:
    [path] = [p for p in folder.glob("*.arrow") if text in p.read_bytes()]
    return path


def rerun_and_check(pipeline, server: FakeServer, caplog: pytest.LogCaptureFixture) -> str:
    server.reset()
    with caplog.at_level(logging.WARNING, logger="potstill"):
        rows = pipeline.run()["default"]["train"]
    assert_exactly_once_and_aligned(rows, ROWS)
    assert server.requests == []  # recomputed from the journal
    return caplog.text


def test_changed_bytes_in_a_batch_file_are_never_returned(
    fake_server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline, task = generation_pipeline(fake_server, ROWS)
    pipeline.run()
    path = file_holding(step_folder(pipeline, task.name), b"Echo: q29")
    data = path.read_bytes()
    path.write_bytes(data.replace(b"Echo: q29", b"XXXXXXq29", 1))

    log = rerun_and_check(pipeline, fake_server, caplog)
    assert str(path) in log and "checksum" in log


def test_a_truncated_batch_file_is_named_and_recomputed(
    fake_server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline, task = generation_pipeline(fake_server, ROWS)
    pipeline.run()
    path = file_holding(step_folder(pipeline, task.name), b"q12")
    path.write_bytes(path.read_bytes()[:100])

    log = rerun_and_check(pipeline, fake_server, caplog)
    assert str(path) in log and "damaged" in log


def test_a_damaged_generator_batch_is_generated_again(
    fake_server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline, task = generation_pipeline(fake_server, ROWS)
    pipeline.run()
    path = file_holding(step_folder(pipeline, "load_data_from_dicts_0"), b"q12")
    path.write_bytes(path.read_bytes()[:100])

    fake_server.reset()
    with caplog.at_level(logging.WARNING, logger="potstill"):
        # A new temperature: the task runs again and reads every generator batch.
        params = {task.name: {"llm": {"generation_kwargs": {"temperature": 0.5}}}}
        rows = pipeline.run(params=params)["default"]["train"]
    assert_exactly_once_and_aligned(rows, ROWS)
    assert str(path) in caplog.text and "damaged" in caplog.text


def test_a_garbage_manifest_is_named_and_its_batches_recomputed(
    fake_server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline, task = generation_pipeline(fake_server, ROWS)
    pipeline.run()
    folder = step_folder(pipeline, task.name)
    for name in ("manifest.jsonl", "_complete.json"):  # whichever describes the batches
        if (folder / name).exists():
            (folder / name).write_bytes(b"{not json\n\x00\x07garbage\n")

    log = rerun_and_check(pipeline, fake_server, caplog)
    assert str(folder / "manifest.jsonl") in log and "damaged line" in log


def test_a_damaged_manifest_line_costs_only_its_batches(fake_server: FakeServer) -> None:
    pipeline, task = generation_pipeline(fake_server, ROWS)
    pipeline.run()
    folder = step_folder(pipeline, task.name)
    lines = (folder / "manifest.jsonl").read_bytes().splitlines(keepends=True)
    # The writer may group consecutive batches in one file (and one line) when it falls
    # behind: the damaged line costs the batches it described, and only those.
    described = [_batch_files(line) for line in lines if b'"file"' in line]
    damaged = set(described[0])
    kept = {seq: name for entry in described[1:] for seq, name in entry.items()}
    lines[0] = lines[0].replace(b'"file"', b'"fiXe"')
    (folder / "manifest.jsonl").write_bytes(b"".join(lines))
    before = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.arrow")}

    fake_server.reset()
    assert_exactly_once_and_aligned(pipeline.run()["default"]["train"], ROWS)
    assert len(fake_server.requests) == 0  # the answers came from the journal

    after = {}
    for line in (folder / "manifest.jsonl").read_bytes().splitlines():
        if b'"file"' in line and b"fiXe" not in line:
            after.update(_batch_files(line))
    assert set(after) == damaged | set(kept)
    for seq, name in kept.items():  # the other batches were reused as they were
        assert after[seq] == name and (folder / name).stat().st_mtime_ns == before[name]
    for seq in damaged:  # the damaged line's batches were written again
        assert (folder / after[seq]).stat().st_mtime_ns not in before.values()


def _batch_files(line: bytes) -> dict[int, str]:
    """Batch number -> file, from one manifest line."""
    record = json.loads(line[line.index(b"{") :])
    return {batch[0]: record["file"] for batch in record["batches"]}


def test_a_nul_byte_in_the_journal_costs_only_that_line(
    fake_server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline, task = generation_pipeline(fake_server, ROWS)
    pipeline.run()
    folder = step_folder(pipeline, task.name)
    for path in folder.glob("*.arrow"):  # the answers now come from the journal alone
        path.unlink()
    journal = folder / "requests.jsonl"
    lines = journal.read_bytes().splitlines(keepends=True)
    lines[5] = lines[5][:20] + b"\x00" + lines[5][21:]
    journal.write_bytes(b"".join(lines))

    fake_server.reset()
    with caplog.at_level(logging.WARNING, logger="potstill"):
        rows = pipeline.run()["default"]["train"]
    assert_exactly_once_and_aligned(rows, ROWS)
    assert len(fake_server.requests) == 1
    assert str(journal) in caplog.text and "damaged line" in caplog.text
