"""Steps defined in the script that saves a pipeline: a warning when it is saved, and a clear
error from the CLI, both saying to move the step into a module and allow it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

STEPS = textwrap.dedent(
    """
    from potstill.steps import Step, StepInput, step


    @step(inputs=["instruction"], outputs=["length"])
    def InstructionLength(inputs: StepInput):
        for row in inputs:
            row["length"] = len(row["instruction"])
        yield inputs


    class Shout(Step):
        @property
        def inputs(self):
            return ["instruction"]

        @property
        def outputs(self):
            return ["shout"]

        def process(self, inputs: StepInput):
            yield [{**row, "shout": row["instruction"].upper()} for row in inputs]
    """
)

PIPELINE = textwrap.dedent(
    """
    from potstill.pipeline import Pipeline
    from potstill.steps import LoadDataFromDicts

    with Pipeline(name="script-steps") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "hi"}])
        load >> InstructionLength(name="length") >> Shout(name="shout")

    pipeline.save("pipeline.yaml", format="yaml")
    """
)


def python(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        "COLUMNS": "250",
        "POTSTILL_PROGRESS": "0",
    }
    return subprocess.run(
        [sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_steps_of_the_running_script_warn_at_save_and_fail_clearly_in_the_cli(
    tmp_path: Path,
) -> None:
    (tmp_path / "save_pipeline.py").write_text(STEPS + PIPELINE)

    saved = python("save_pipeline.py", cwd=tmp_path)

    assert saved.returncode == 0, saved.stderr
    for step, cls in (("length", "InstructionLength"), ("shout", "Shout")):
        assert f"Step '{step}' uses class {cls}, defined in the running script" in saved.stderr
    assert "--allow-module my_steps" in saved.stderr
    assert "allowed_modules=['my_steps']" in saved.stderr

    for allow in ([], ["--allow-module", "__main__"]):
        config = ["--config", "pipeline.yaml", *allow]
        for command in (["run", "--no-progress"], ["info"]):
            result = python("-m", "potstill.cli.app", "pipeline", *command, *config, cwd=tmp_path)
            output = result.stdout + result.stderr
            assert result.returncode == 1, output
            assert "class 'InstructionLength', defined in the running script" in output
            assert "importable module" in output and "--allow-module my_steps" in output
            assert "_Step" not in output
            assert "Traceback" not in output


def test_following_the_advice_makes_the_pipeline_run_from_the_cli(tmp_path: Path) -> None:
    (tmp_path / "my_steps.py").write_text(STEPS)
    (tmp_path / "save_pipeline.py").write_text(
        "from my_steps import InstructionLength, Shout\n" + PIPELINE
    )

    saved = python("save_pipeline.py", cwd=tmp_path)
    assert saved.returncode == 0, saved.stderr
    assert "Warning" not in saved.stderr

    result = python(
        "-m",
        "potstill.cli.app",
        "pipeline",
        "run",
        "--config",
        "pipeline.yaml",
        "--allow-module",
        "my_steps",
        "--no-progress",
        "--output",
        "out",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    from potstill.distiset import Distiset

    rows = Distiset.load_from_disk(tmp_path / "out")["default"]["train"]
    assert rows["shout"] == ["HI"] and rows["length"] == [2]
