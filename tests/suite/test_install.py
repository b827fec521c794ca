"""`scripts/install.py`, the README's install step: llama-cpp-python only ever comes from the
portable wheel it builds, never from a build pip compiles (or cached) for another CPU."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def installer(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("potstill_install", ROOT / "scripts/install.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setenv("POTSTILL_WHEELHOUSE", str(tmp_path / "wheels"))
    return module


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    head = text.split("\n---\n")[0]
    return re.findall(r"```bash\n(.*?)\n```", head, re.S)


def test_the_readme_starts_with_two_commands_and_ci_runs_the_second() -> None:
    commands = readme_commands()
    assert len(commands) == 2
    quickstart, tests = commands
    assert quickstart.endswith("python examples/quickstart.py")
    assert "scripts/install.py llama-cpp" in quickstart
    # the default suite, then the tests on a Ray cluster
    assert tests.endswith("python -m pytest && python -m pytest -m ray")
    assert "scripts/install.py dev" in tests
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == tests


def test_the_extras_that_need_llama_cpp_are_found_through_nested_extras(
    installer: ModuleType,
) -> None:
    assert installer.llama_cpp_requirement().startswith("llama-cpp-python")
    assert installer.needs_llama_cpp(["llama-cpp"])
    assert installer.needs_llama_cpp(["dev"])  # dev = potstill[...,llama-cpp,...]
    assert not installer.needs_llama_cpp(["openai"])
    assert not installer.needs_llama_cpp([])


def test_install_takes_llama_cpp_only_from_the_portable_wheel(
    installer: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = installer.wheelhouse(native=False)
    assert folder.name.endswith("portable-v1")
    folder.mkdir(parents=True)
    wheel = folder / "llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl"
    wheel.write_bytes(b"")
    (folder / "llama_cpp_python-0.2.90-py3-none-linux_x86_64.whl").write_bytes(b"")  # too old
    commands: list[list[str]] = []
    monkeypatch.setattr(installer, "run", lambda command, env=None: commands.append(command))

    assert installer.main(["dev"]) == 0

    reinstall, install = commands  # nothing was built: the wheel was there
    assert reinstall[-4:] == ["install", "--force-reinstall", "--no-deps", str(wheel)]
    assert install[:5] == [sys.executable, "-m", "pip", "install", "-e"]
    assert install[5] == ".[dev]"
    options = " ".join(install[6:])
    assert f"--only-binary llama-cpp-python --find-links {folder}" in options
    constraint = Path(install[install.index("--constraint") + 1])
    assert constraint.read_text() == "llama-cpp-python==0.3.36\n"


def test_a_missing_wheel_is_built_portable_from_the_source_release(
    installer: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands: list[tuple[list[str], dict[str, str] | None]] = []

    def fake_run(command: list[str], env: dict[str, str] | None = None) -> None:
        commands.append((command, env))
        if "download" in command:
            dest = Path(command[command.index("--dest") + 1])
            (dest / "llama_cpp_python-0.3.40.tar.gz").write_bytes(b"")
        if "wheel" in command:
            out = Path(command[command.index("--wheel-dir") + 1])
            out.mkdir()
            (out / "llama_cpp_python-0.3.40-py3-none-linux_x86_64.whl").write_bytes(b"")

    monkeypatch.setattr(installer, "run", fake_run)
    wheel = installer.ensure_wheel("llama-cpp-python>=0.3", native=False, upgrade=False)
    assert wheel.parent == installer.wheelhouse(native=False)
    (download, _), (build, env) = commands
    assert "--no-binary" in download and "llama-cpp-python>=0.3" in download
    assert "--no-cache-dir" in build  # never a wheel from pip's cache
    assert env is not None and "-DGGML_NATIVE=OFF" in env["CMAKE_ARGS"]


def test_native_builds_live_apart_from_portable_ones(installer: ModuleType) -> None:
    native = installer.wheelhouse(native=True)
    assert native != installer.wheelhouse(native=False)
    assert "native-" in native.name and installer.cpu_fingerprint() in native.name
    assert "-DGGML_NATIVE=ON" in installer.NATIVE_FLAGS
