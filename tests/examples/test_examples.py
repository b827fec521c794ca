"""Every script under examples/ runs (against the loopback server) and prints what it should."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

# The examples on the embedded local model: tested with the local-model code (LlamaCppLLM)
# in tests/local/, not here.
LOCAL_MODEL_EXAMPLES = {"quickstart.py", "preference_dataset.py"}


def run_example(
    args: list[str], cwd: Path, env_overrides: dict[str, str | None] | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)  # already isolated by the suite's autouse fixture
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    env["COLUMNS"] = "200"
    for name, value in (env_overrides or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    result = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result


def chat_requests(server: Any) -> list[Any]:
    return [r for r in server.requests if r.path.endswith("/chat/completions")]


def test_every_example_has_a_test() -> None:
    tested = {
        "generate.py",
        "task.py",
        "pipeline_with_params.py",
        "custom_llm.py",
        "save_pipeline.py",
        *LOCAL_MODEL_EXAMPLES,
    }
    scripts = {path.name for path in EXAMPLES.glob("*.py")}
    assert scripts - tested == set(), "add a test for each new example"


def test_generate(openai_env: Any, tmp_path: Path) -> None:
    out = run_example([str(EXAMPLES / "generate.py")], tmp_path).stdout
    # The loopback server tells samples apart with " (sample N)".
    assert (
        "['The capital of Spain is Madrid.', 'The capital of Spain is Madrid. (sample 1)']" in out
    )
    assert (
        "['The capital of France is Paris.', 'The capital of France is Paris. (sample 1)']" in out
    )
    # One request with n=2: its usage is on the first generation.
    assert "input tokens: [5, None] output tokens: [14, None]" in out
    assert "UsageSummary(requests=2, cached_requests=0, failed_requests=0" in out
    bodies = [r.body for r in chat_requests(openai_env)]
    assert [b["n"] for b in bodies] == [2, 2]
    assert all(b["temperature"] == 0.7 for b in bodies)


def test_task(openai_env: Any, tmp_path: Path) -> None:
    out = run_example([str(EXAMPLES / "task.py")], tmp_path).stdout
    assert "What's the capital of Spain? -> The capital of Spain is Madrid. (gpt-4o-mini)" in out
    assert "'input_tokens':" in out and "'output_tokens':" in out
    first = chat_requests(openai_env)[0].body["messages"]
    assert first[0] == {"role": "system", "content": "You are a concise geography teacher."}


def test_pipeline_with_params(openai_env: Any, tmp_path: Path) -> None:
    out = run_example([str(EXAMPLES / "pipeline_with_params.py")], tmp_path).stdout
    assert "num_rows: 6" in out
    assert "What is 2 + 2? -> 2 + 2 equals 4.\n" in out
    assert "What is 2 + 2? -> 2 + 2 equals 4. (sample 1)\n" in out
    assert "{'max_new_tokens': 256, 'temperature': 0.3}" in out
    bodies = [r.body for r in chat_requests(openai_env)]
    assert len(bodies) == 3
    assert all(b["max_tokens"] == 256 and b["temperature"] == 0.3 and b["n"] == 2 for b in bodies)
    assert (tmp_path / "capitals-distiset" / "default").is_dir()


def test_custom_llm(tmp_path: Path) -> None:
    out = run_example([str(EXAMPLES / "custom_llm.py")], tmp_path).stdout.splitlines()
    assert "[['words: 3', 'words: 3']]" in out
    assert "SENILEPIP SNUR LLITSTOP" in out
    assert "['n=3', 'n=3']" in out


def test_saved_yaml_matches_the_script_that_writes_it(tmp_path: Path) -> None:
    # Without OPENAI_BASE_URL, as a user without a custom server would save it.
    target = tmp_path / "pipeline.yaml"
    run_example(
        [str(EXAMPLES / "save_pipeline.py"), str(target)],
        tmp_path,
        {"OPENAI_BASE_URL": None},
    )
    written = yaml.safe_load(target.read_text())
    committed = yaml.safe_load((EXAMPLES / "pipeline.yaml").read_text())
    written.pop("potstill"), committed.pop("potstill")  # the version
    assert written == committed, "regenerate with: python examples/save_pipeline.py"


def test_cli_run_of_the_example_config(openai_env: Any, tmp_path: Path) -> None:
    config = EXAMPLES / "pipeline.yaml"
    info = run_example(
        ["-m", "potstill.cli.app", "pipeline", "info", "--config", str(config)], tmp_path
    )
    assert "text_generation" in info.stdout and "OpenAILLM (gpt-4o-mini)" in info.stdout

    run = run_example(
        [
            "-m",
            "potstill.cli.app",
            "pipeline",
            "run",
            "--config",
            str(config),
            # The file pins OpenAI's URL; point it at the loopback server instead.
            "--param",
            f"text_generation.llm.base_url={openai_env.openai_base_url}",
            "--param",
            "text_generation.llm.generation_kwargs.temperature=0.3",
            "--output",
            "capitals-distiset",
            "--no-progress",
        ],
        tmp_path,
    )
    assert "Datasets saved to capitals-distiset" in run.stdout
    from potstill.distiset import Distiset

    rows = Distiset.load_from_disk(tmp_path / "capitals-distiset")["default"]["train"]
    assert rows["generation"] == [
        "The capital of Spain is Madrid.",
        "The capital of France is Paris.",
    ]
    assert all(r.body["temperature"] == 0.3 for r in chat_requests(openai_env))
