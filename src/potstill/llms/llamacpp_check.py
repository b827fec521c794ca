"""Checks, once per llama.cpp build, CPU and model, that llama.cpp really runs on this machine.

`llama-cpp-python` is compiled from source when it is installed, by default for the CPU of
the machine that built it (`-march=native`). Moved to another CPU, or run in a VM whose CPU
reports instructions (AVX-512, AMX) it does not really provide, such a build dies with
"Illegal instruction" in the middle of a generation: the whole process is gone, with nothing
said. So before the first model is loaded in a process, a short generation runs in a child
process. If the child is killed by a signal, loading fails with a `LlamaCppBuildError` that
says what happened and how to install a portable build. A check that passed is remembered on
disk (keyed by the library files, the CPU and the model file), so it costs one extra model load
per machine and model, not one per run.

Set `POTSTILL_LLAMA_CPP_CHECK=0` to skip it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Optional

from potstill.errors import LlamaCppBuildError

CHECK_ENV_VAR = "POTSTILL_LLAMA_CPP_CHECK"
PORTABLE_INSTALL = (
    'CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install --force-reinstall --no-cache-dir llama-cpp-python'
)
"""The pip command that replaces the installed llama-cpp-python with a portable build."""

# Runs in the child: prints the build's features, then generates two tokens on the CPU.
_PROBE_SOURCE = """
import sys
import llama_cpp
print(llama_cpp.llama_print_system_info().decode(errors="replace").strip(), flush=True)
model = llama_cpp.Llama(
    model_path=sys.argv[1], n_ctx=64, n_batch=64, n_threads=1, n_gpu_layers=0, verbose=False
)
model.create_completion("The sky is", max_tokens=2, temperature=0.0)
"""
_PROBE_TIMEOUT = 600.0

_passed: set[str] = set()


def ensure_llama_cpp_runs(model_path: Path, cache_dir: Optional[Path] = None) -> None:
    """Fails with a clear message when llama.cpp crashes running `model_path` on this CPU.

    Args:
        model_path: the GGUF file about to be loaded.
        cache_dir: where passed checks are remembered (default
            `~/.cache/potstill/llama-cpp-check`).

    Raises:
        LlamaCppBuildError: when the trial generation was killed by a signal (SIGILL,
            SIGSEGV, SIGBUS...).
    """
    if os.environ.get(CHECK_ENV_VAR, "1").strip().lower() in ("0", "false", "no", "off"):
        return
    key = _check_key(model_path)
    if key is None or key in _passed:
        return
    marker = (cache_dir or _default_cache_dir()) / f"{key}.json"
    if marker.is_file():
        _passed.add(key)
        return
    result = subprocess.run(
        [sys.executable, "-c", _PROBE_SOURCE, str(model_path)],
        capture_output=True,
        text=True,
        timeout=_PROBE_TIMEOUT,
        check=False,
    )
    if result.returncode < 0:
        raise LlamaCppBuildError(_crash_message(-result.returncode, model_path, result.stdout))
    if result.returncode != 0:
        # Not a crash (a bad model file, too little memory...): loading in this process
        # reports the real error. Nothing is remembered, so the check runs again next time.
        return
    _passed.add(key)
    _remember(marker, model_path, result.stdout)


def _crash_message(signal_number: int, model_path: Path, features: str) -> str:
    try:
        name = signal.Signals(signal_number).name
    except ValueError:
        name = f"signal {signal_number}"
    cause = (
        "it was compiled for instructions this CPU does not run: usually a build made "
        "with `-march=native` (pip's default for llama-cpp-python) on another machine, or on "
        "a machine or VM whose CPU reports AVX-512/AMX that it cannot really execute"
        if name == "SIGILL"
        else "the library crashed before generating anything"
    )
    reported = f" The build reports: {features.strip()}." if features.strip() else ""
    return (
        f"llama.cpp crashed ({name}) in a trial run of {model_path.name} in a separate "
        f"process, so it would crash this one too. The installed llama-cpp-python "
        f"({_library_folder() or 'unknown location'}) cannot run here: {cause}.{reported} "
        "Install a portable build: from a potstill checkout, `python scripts/install.py "
        f"llama-cpp`; or `{PORTABLE_INSTALL}`. (`{CHECK_ENV_VAR}=0` skips this check.)"
    )


def _library_folder() -> Optional[Path]:
    """llama-cpp-python's folder of shared libraries, found without importing it (an import
    already loads the libraries, whose start-up code can be what crashes)."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "lib"


def _check_key(model_path: Path) -> Optional[str]:
    """A hash of what decides whether llama.cpp runs: its libraries, the CPU, the model."""
    folder = _library_folder()
    if folder is None or not folder.is_dir():
        return None
    parts = [sys.executable, _cpu_description()]
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.is_symlink():
            stat = path.stat()
            parts.append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
    try:
        stat = model_path.stat()
    except OSError:
        return None
    parts.append(f"{model_path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def _cpu_description() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        import platform

        return f"{platform.machine()} {platform.processor()}"
    wanted = ("model name", "flags", "Features", "CPU part")
    return "\n".join(sorted({ln for ln in text.splitlines() if ln.startswith(wanted)}))


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME")
    root = Path(base) if base else Path.home() / ".cache"
    return root / "potstill" / "llama-cpp-check"


def _remember(marker: Path, model_path: Path, features: str) -> None:
    """Writes the passed check's marker; a read-only cache only costs a check next time."""
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        record = {"model": str(model_path), "features": features.strip()}
        temporary = marker.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(record), encoding="utf-8")
        os.replace(temporary, marker)
    except OSError:
        pass
