"""The append-only logs behind the request journal and the response cache."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from potstill.utils.append_log import AppendLog, MappedLog, read_line, read_lines


@pytest.mark.parametrize("log_class", [MappedLog, AppendLog])
def test_lines_appended_before_kill_9_are_kept(tmp_path: Path, log_class: type) -> None:
    path = tmp_path / "log.jsonl"
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from potstill.utils.append_log import {log_class.__name__}
        log = {log_class.__name__}(Path({str(path)!r}))
        for i in range(1000):
            log.append(f"line {{i}}".encode())
        os.kill(os.getpid(), signal.SIGKILL)  # no close, no flush, no exit handlers
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert result.returncode == -9
    assert read_lines(path) == [f"line {i}".encode() for i in range(1000)]


def test_a_cut_line_and_the_zero_padding_are_skipped_and_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"first\nsecond\nthir" + b"\x00" * 100)  # killed mid-copy
    assert read_lines(path) == [b"first", b"second"]

    log = MappedLog(path)
    log.append(b"third")
    log.close()
    assert path.read_bytes() == b"first\nsecond\nthird\n"


def test_closing_a_mapped_log_trims_it_and_it_reopens(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    log = MappedLog(path)
    log.append(b"a")
    log.close()
    log.append(b"b" * (3 << 20))  # grows past the first mapping
    log.close()
    assert read_lines(path) == [b"a", b"b" * (3 << 20)]
    assert path.stat().st_size == 2 + (3 << 20) + 1


@pytest.mark.parametrize("log_class", [MappedLog, AppendLog])
def test_append_says_where_each_line_starts_and_it_reads_back_there(
    tmp_path: Path, log_class: type
) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"written before\n")
    log = log_class(path)
    other = AppendLog(path)  # another writer of the shared kind, between two appends

    first = log.append(b"first")
    if log_class is AppendLog:
        other.append(b"from another writer")
    second = log.append(b"second")
    log.close()
    other.close()

    assert first == len(b"written before\n")
    assert read_line(path, first) == b"first"
    assert read_line(path, second) == b"second"
    assert read_line(path, path.stat().st_size) is None  # nothing (complete) there
