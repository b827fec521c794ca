"""The test command survives a native crash: the crashing test fails, the rest still run, and
pytest prints its summary (the suite runs in a worker process that is replaced after a crash)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CRASHING_TESTS = textwrap.dedent(
    """
    import ctypes
    import os
    import signal


    def test_before():
        assert True


    def test_illegal_instruction():
        os.kill(os.getpid(), signal.SIGILL)


    def test_segmentation_fault():
        ctypes.string_at(0)


    def test_after():
        assert True
    """
)


def test_a_native_crash_fails_only_its_test_and_the_summary_is_printed(tmp_path: Path) -> None:
    (tmp_path / "test_crashes.py").write_text(CRASHING_TESTS)
    # The project's own pytest configuration (the README's test command), on a file that
    # crashes twice.
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml")),
            *("--rootdir", str(tmp_path), "-p", "no:cacheprovider", "-p", "no:randomly"),
            str(tmp_path / "test_crashes.py"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "2 failed, 2 passed" in output, output
    for name in ("test_illegal_instruction", "test_segmentation_fault"):
        assert f"crashed while running 'test_crashes.py::{name}'" in output, output
    assert "Illegal instruction" in output  # the worker's fault handler says which signal
