"""The llama.cpp build check: a build that crashes on this CPU is a clear error, not a dead
process, and a build that runs is checked once, not on every load."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from potstill.llms import LlamaCppLLM, llamacpp_check
from potstill.llms.llamacpp import default_thread_count, embedded_model_path
from potstill.llms.llamacpp_check import LlamaCppBuildError, ensure_llama_cpp_runs

pytest.importorskip("llama_cpp")

# A child that dies the way a build for another CPU does, before generating anything.
_ILLEGAL_INSTRUCTION = (
    "import os, signal; print('AVX512 = 1 | AMX_INT8 = 1', flush=True); "
    "os.kill(os.getpid(), signal.SIGILL)"
)


@pytest.fixture(autouse=True)
def fresh_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """No check remembered in this process; the check is on."""
    monkeypatch.setattr(llamacpp_check, "_passed", set())
    monkeypatch.delenv(llamacpp_check.CHECK_ENV_VAR, raising=False)


def test_a_build_that_runs_here_passes_once_and_is_remembered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = embedded_model_path()
    ensure_llama_cpp_runs(model, cache_dir=tmp_path)
    (marker,) = tmp_path.glob("*.json")
    assert "AVX2" in marker.read_text()  # the build's features, as the child printed them

    def no_child(*args: object, **kwargs: object) -> None:
        raise AssertionError("the check ran again")

    monkeypatch.setattr(subprocess, "run", no_child)
    ensure_llama_cpp_runs(model, cache_dir=tmp_path)  # remembered in this process
    monkeypatch.setattr(llamacpp_check, "_passed", set())
    ensure_llama_cpp_runs(model, cache_dir=tmp_path)  # remembered on disk


def test_a_build_that_crashes_is_a_clear_error_naming_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(llamacpp_check, "_PROBE_SOURCE", _ILLEGAL_INSTRUCTION)
    with pytest.raises(LlamaCppBuildError) as raised:
        ensure_llama_cpp_runs(embedded_model_path(), cache_dir=tmp_path)
    message = str(raised.value)
    assert "SIGILL" in message and "SmolLM2-135M-Instruct" in message
    assert "AVX512 = 1 | AMX_INT8 = 1" in message  # what the build said about itself
    assert "python scripts/install.py llama-cpp" in message
    assert llamacpp_check.PORTABLE_INSTALL in message
    assert not list(tmp_path.glob("*.json"))  # a failure is never remembered


def test_loading_a_crashing_build_fails_before_llama_cpp_runs_in_this_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(llamacpp_check, "_PROBE_SOURCE", _ILLEGAL_INSTRUCTION)
    llm = LlamaCppLLM(n_threads=1)
    with pytest.raises(LlamaCppBuildError, match="crashed \\(SIGILL\\)"):
        llm.load()
    assert not llm.is_loaded


def test_the_check_can_be_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llamacpp_check, "_PROBE_SOURCE", _ILLEGAL_INSTRUCTION)
    monkeypatch.setenv(llamacpp_check.CHECK_ENV_VAR, "0")
    ensure_llama_cpp_runs(embedded_model_path(), cache_dir=tmp_path)


def test_a_child_that_fails_without_crashing_leaves_the_error_to_the_real_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(llamacpp_check, "_PROBE_SOURCE", "raise SystemExit(3)")
    ensure_llama_cpp_runs(embedded_model_path(), cache_dir=tmp_path)
    assert not list(tmp_path.glob("*.json"))


def test_default_threads_leave_half_the_cpus_free(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert default_thread_count() == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    assert default_thread_count() == 8
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert default_thread_count() == 1

    kwargs = LlamaCppLLM()._llama_kwargs()
    assert kwargs["n_threads"] == kwargs["n_threads_batch"] == 1
    chosen = LlamaCppLLM(n_threads=3)._llama_kwargs()
    assert chosen["n_threads"] == chosen["n_threads_batch"] == 3
