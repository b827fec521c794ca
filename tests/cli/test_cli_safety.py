"""A config never imports a module the user did not allow (checked in a fresh process)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from tests.cli.helpers import build_pipeline

ROOT = Path(__file__).resolve().parents[2]

# Importing this module leaves a file behind: the visible side effect the tests look for.
STRANGER = textwrap.dedent(
    """
    import os
    from pathlib import Path

    Path(os.environ["STRANGER_MARKER"]).write_text("imported")

    from potstill.steps import Step, StepInput


    class Shout(Step):
        @property
        def inputs(self):
            return ["generation"]

        @property
        def outputs(self):
            return ["shout"]

        def process(self, inputs: StepInput):
            yield [{**row, "shout": (row["generation"] or "").upper()} for row in inputs]
    """
)


@pytest.fixture
def stranger_config(openai_env: Any, tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """A config whose last step is `stranger_steps.Shout`, a module nobody imported."""
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "stranger_steps.py").write_text(STRANGER)
    dump = build_pipeline(name="stranger").dump()
    dump["pipeline"]["steps"].append(
        {
            "name": "shout",
            "step": {
                "name": "shout",
                "type_info": {"module": "stranger_steps", "name": "Shout"},
            },
        }
    )
    dump["pipeline"]["connections"] = [
        {"from": "load", "to": ["text_generation"]},
        {"from": "text_generation", "to": ["shout"]},
        {"from": "shout", "to": []},
    ]
    import yaml

    config = tmp_path / "stranger.yaml"
    config.write_text(yaml.safe_dump(dump, sort_keys=False))
    marker = tmp_path / "imported.txt"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT), str(modules)]),
        "STRANGER_MARKER": str(marker),
        "COLUMNS": "250",
    }
    return config, marker, env


def potstill(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "potstill.cli.app", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_module_that_is_not_allowed_is_never_imported(
    stranger_config: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    config, marker, env = stranger_config
    for command in ("info", "run"):
        result = potstill("pipeline", command, "--config", str(config), env=env, cwd=tmp_path)
        output = result.stdout + result.stderr
        assert result.returncode == 1, output
        assert "'stranger_steps'" in output
        assert "--allow-module" in output
        assert "Traceback" not in output
        assert not marker.exists(), f"`{command}` imported the module"


def test_an_allowed_module_is_imported_and_its_step_runs(
    stranger_config: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    config, marker, env = stranger_config
    output_dir = tmp_path / "out"
    result = potstill(
        "pipeline",
        "run",
        "--config",
        str(config),
        "--allow-module",
        "stranger_steps",
        "--output",
        str(output_dir),
        "--no-progress",
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert marker.read_text() == "imported"
    from potstill.distiset import Distiset

    rows = Distiset.load_from_disk(output_dir)["default"]["train"]
    assert rows["shout"] == ["THE CAPITAL OF SPAIN IS MADRID.", "THE CAPITAL OF FRANCE IS PARIS."]


def test_allowing_another_module_does_not_allow_this_one(
    stranger_config: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    config, marker, env = stranger_config
    result = potstill(
        "pipeline", "info", "--config", str(config), "--allow-module", "json", env=env, cwd=tmp_path
    )
    assert result.returncode == 1
    assert not marker.exists()


def test_a_module_in_the_working_directory_can_be_allowed(
    stranger_config: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    """A console script does not put the working directory on sys.path; the CLI does, for
    allowed modules only (appended, so it never shadows an installed package)."""
    config, marker, env = stranger_config
    env = {**env, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    workdir = tmp_path / "modules"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "potstill"  # like the console script: its own dir is sys.path[0]
    script.write_text("import sys\nfrom potstill.cli.app import main\nsys.exit(main())\n")
    args = ["pipeline", "info", "--config", str(config)]

    refused = subprocess.run(
        [sys.executable, str(script), *args],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 1
    assert not marker.exists()

    allowed = subprocess.run(
        [sys.executable, str(script), *args, "--allow-module", "stranger_steps"],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert marker.exists()
    assert "Shout" in allowed.stdout
