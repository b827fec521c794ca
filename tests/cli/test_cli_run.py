"""`potstill pipeline run`: a saved pipeline runs from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.cli.helpers import ANSWERS, QUESTIONS, build_pipeline

from potstill.distiset import Distiset

STEP = "text_generation"


def chat_requests(server: Any) -> list[Any]:
    return [r for r in server.requests if r.path.endswith("/chat/completions")]


@pytest.mark.parametrize("format", ["yaml", "json"])
def test_a_saved_pipeline_runs_and_its_datasets_are_saved(
    format: str, openai_env: Any, tmp_path: Path, invoke: Any
) -> None:
    config = build_pipeline().save(tmp_path / f"pipeline.{format}", format=format)
    output = tmp_path / "out"

    result = invoke("pipeline", "run", "--config", str(config), "--output", str(output))

    assert result.exit_code == 0, result.output
    distiset = Distiset.load_from_disk(output)
    rows = distiset["default"]["train"]
    assert rows["instruction"] == QUESTIONS
    assert rows["generation"] == ANSWERS
    assert (output / "pipeline.yaml").is_file()
    assert "Datasets saved to" in result.output and "default" in result.output
    assert len(chat_requests(openai_env)) == 2


def test_string_params_are_coerced_before_they_reach_the_api(
    config_file: Path, openai_env: Any, tmp_path: Path, invoke: Any
) -> None:
    output = tmp_path / "out"
    result = invoke(
        "pipeline",
        "run",
        "--config",
        str(config_file),
        "--output",
        str(output),
        "--param",
        f"{STEP}.llm.generation_kwargs.temperature=0.3",
        "--param",
        f"{STEP}.llm.generation_kwargs.max_new_tokens=8",
        "-p",
        f"{STEP}.input_batch_size=1",
    )

    assert result.exit_code == 0, result.output
    bodies = [r.body for r in chat_requests(openai_env)]
    assert len(bodies) == 2
    for body in bodies:
        assert body["temperature"] == 0.3 and isinstance(body["temperature"], float)
        assert body["max_tokens"] == 8 and isinstance(body["max_tokens"], int)
    # The run's config (copied next to the datasets) holds typed values, not strings.
    saved = yaml.safe_load((output / "pipeline.yaml").read_text())
    step = next(s["step"] for s in saved["pipeline"]["steps"] if s["name"] == STEP)
    assert step["input_batch_size"] == 1
    assert step["llm"]["generation_kwargs"] == {"temperature": 0.3, "max_new_tokens": 8}


def test_default_output_directory_is_named_after_the_pipeline(
    config_file: Path, openai_env: Any, tmp_path: Path, invoke: Any, monkeypatch: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("pipeline", "run", "--config", str(config_file))
    assert result.exit_code == 0, result.output
    saved = Distiset.load_from_disk(tmp_path / "potstill-data" / "cli-test")
    assert saved["default"]["train"]["generation"] == ANSWERS


def test_a_second_run_uses_the_cache_and_ignore_cache_starts_over(
    config_file: Path, openai_env: Any, tmp_path: Path, invoke: Any
) -> None:
    args = ["pipeline", "run", "--config", str(config_file), "--output", str(tmp_path / "o")]
    assert invoke(*args).exit_code == 0
    assert len(chat_requests(openai_env)) == 2

    assert invoke(*args).exit_code == 0
    assert len(chat_requests(openai_env)) == 2  # every batch came from the cache

    result = invoke(*args, "--ignore-cache")
    assert result.exit_code == 0, result.output
    assert len(chat_requests(openai_env)) == 4
    assert Distiset.load_from_disk(tmp_path / "o")["default"]["train"]["generation"] == ANSWERS


def test_api_key_from_param_is_used_and_never_printed_or_saved(
    fake_server: Any, tmp_path: Path, invoke: Any
) -> None:
    # No OPENAI_API_KEY in the environment: the key comes from --param only.
    config = build_pipeline(base_url=fake_server.openai_base_url).save(
        tmp_path / "pipeline.yaml", format="yaml"
    )
    output = tmp_path / "out"
    result = invoke(
        "pipeline",
        "run",
        "--config",
        str(config),
        "--output",
        str(output),
        "--param",
        f"{STEP}.llm.api_key=test-key",
    )

    assert result.exit_code == 0, result.output
    assert [r.headers.get("authorization") for r in chat_requests(fake_server)] == [
        "Bearer test-key"
    ] * 2
    assert "test-key" not in result.output
    assert f"{STEP}.llm.api_key=**********" in result.output
    for path in output.rglob("*"):
        if path.is_file() and path.suffix in (".yaml", ".json"):
            assert "test-key" not in path.read_text()


def test_missing_api_key_names_the_env_var(fake_server: Any, tmp_path: Path, invoke: Any) -> None:
    config = build_pipeline(base_url=fake_server.openai_base_url).save(
        tmp_path / "p.yaml", format="yaml"
    )
    result = invoke("pipeline", "run", "--config", str(config), "-o", str(tmp_path / "o"))
    assert result.exit_code == 1
    assert "OPENAI_API_KEY" in result.output
    assert "Traceback" not in result.output
    assert chat_requests(fake_server) == []


@pytest.mark.parametrize(
    ("param", "expected"),
    [
        ("text_generaton.input_batch_size=2", "Did you mean 'text_generation'?"),
        (f"{STEP}.input_batch_sze=2", "Did you mean 'input_batch_size'?"),
        (f"{STEP}.llm.generation_kwargs.temprature=0.3", "Did you mean 'temperature'?"),
        (f"{STEP}.llm.timeot=3", "Did you mean 'timeout'?"),
        (f"{STEP}.llm.generation_kwargs.temperature=hot", "temperature='hot'"),
        (f"{STEP}.input_batch_size=-1", "input_batch_size"),
        ("temperature=0.3", "expected STEP.PARAMETER=VALUE"),
        # A name given at the wrong level: the message shows the option that works.
        (f"{STEP}.llm.temperature=0.3", f"--param {STEP}.llm.generation_kwargs.temperature=0.3"),
        (f"{STEP}.generation_kwargs.top_p=0.5", f"--param {STEP}.llm.generation_kwargs.top_p=0.5"),
        (f"{STEP}.llm.input_batch_size=4", f"--param {STEP}.input_batch_size=4"),
    ],
)
def test_bad_params_fail_cleanly_with_suggestions(
    param: str, expected: str, config_file: Path, openai_env: Any, tmp_path: Path, invoke: Any
) -> None:
    result = invoke(
        "pipeline", "run", "--config", str(config_file), "-o", str(tmp_path / "o"), "-p", param
    )
    assert result.exit_code == 1
    unwrapped = " ".join(result.output.replace("│", " ").split())  # the error box wraps lines
    assert expected in unwrapped
    assert "Error" in result.output
    assert "Traceback" not in result.output
    assert len(result.output.splitlines()) < 25  # one screen
    assert chat_requests(openai_env) == []
    assert not (tmp_path / "o").exists()


def test_missing_required_column_is_reported_before_anything_runs(
    openai_env: Any, tmp_path: Path, invoke: Any
) -> None:
    pipeline = build_pipeline()
    dump = pipeline.dump()
    load = dump["pipeline"]["steps"][0]["step"]
    load["data"] = [{"question": q} for q in QUESTIONS]
    config = tmp_path / "p.json"
    config.write_text(json.dumps(dump))

    result = invoke("pipeline", "run", "--config", str(config), "-o", str(tmp_path / "o"))
    assert result.exit_code == 1
    assert "needs input column 'instruction'" in result.output
    assert "--param" in result.output  # the CLI hint
    assert chat_requests(openai_env) == []


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("missing.yaml", None, "not found"),
        ("pipeline.txt", "a: 1", "must end in .yaml, .yml or .json"),
        ("list.yaml", "- 1\n- 2\n", "expected a mapping"),
        ("broken.yaml", "pipeline: [unclosed", "Cannot read config"),
        ("python.yaml", "!!python/object/apply:os.system ['echo pwned']", "Cannot read config"),
        ("notapipeline.json", '{"name": "x"}', "Not a pipeline dump"),
    ],
)
def test_unreadable_configs_fail_cleanly(
    name: str, content: str | None, expected: str, tmp_path: Path, invoke: Any
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    for command in ("run", "info"):
        result = invoke("pipeline", command, "--config", str(path))
        assert result.exit_code == 1, result.output
        assert expected in result.output
        assert "Traceback" not in result.output


def test_a_config_with_a_field_the_class_rejects_fails_cleanly(
    openai_env: Any, tmp_path: Path, invoke: Any
) -> None:
    dump = build_pipeline().dump()
    dump["pipeline"]["steps"][1]["step"]["llm"]["temprature"] = 0.3
    config = tmp_path / "p.json"
    config.write_text(json.dumps(dump))
    result = invoke("pipeline", "run", "--config", str(config))
    assert result.exit_code == 1
    assert "does not describe a valid pipeline" in result.output
    assert "temprature" in result.output
    assert "Traceback" not in result.output


def test_repo_id_pushes_the_datasets(
    config_file: Path, openai_env: Any, tmp_path: Path, invoke: Any, monkeypatch: Any
) -> None:
    pushed: list[tuple[Any, ...]] = []

    def fake_push(self: Distiset, repo_id: str, private: bool = False, token: Any = None) -> None:
        pushed.append((repo_id, private, token, sorted(self)))

    monkeypatch.setattr(Distiset, "push_to_hub", fake_push)
    result = invoke(
        "pipeline",
        "run",
        "--config",
        str(config_file),
        "-o",
        str(tmp_path / "o"),
        "--repo-id",
        "me/capitals",
        "--private",
        "--token",
        "hf_x",
    )
    assert result.exit_code == 0, result.output
    assert pushed == [("me/capitals", True, "hf_x", ["default"])]
    assert "hf_x" not in result.output


def test_version_and_help(invoke: Any) -> None:
    from potstill import __version__

    result = invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"potstill {__version__}"
    result = invoke("pipeline", "run", "--help")
    assert result.exit_code == 0
    for option in ("--config", "--param", "--ignore-cache", "--output", "--allow-module"):
        assert option in result.output


def test_the_console_script_points_at_the_cli() -> None:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")

    from potstill.cli import app as app_module

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    scripts = tomllib.loads(pyproject.read_text())["project"]["scripts"]
    assert scripts == {"potstill": "potstill.cli.app:main"}
    assert callable(app_module.main)


def test_tracebacks_of_unexpected_errors_never_show_local_variables() -> None:
    # A --param value (an API key) could sit in a local variable of a failing frame.
    from potstill.cli.app import app

    assert app.pretty_exceptions_show_locals is False


def test_output_never_deletes_something_that_is_not_a_saved_dataset(
    config_file: Path, openai_env: Any, tmp_path: Path, invoke: Any
) -> None:
    output = tmp_path / "out"
    (output / "default").mkdir(parents=True)
    (output / "default" / "notes.txt").write_text("mine")
    result = invoke("pipeline", "run", "--config", str(config_file), "-o", str(output))
    assert result.exit_code == 1
    assert "not a saved dataset" in result.output
    assert (output / "default" / "notes.txt").read_text() == "mine"
    assert chat_requests(openai_env) == []  # refused before anything ran

    # A dataset saved by an earlier run is replaced.
    other = tmp_path / "other"
    assert invoke("pipeline", "run", "--config", str(config_file), "-o", str(other)).exit_code == 0
    again = invoke("pipeline", "run", "--config", str(config_file), "-o", str(other))
    assert again.exit_code == 0, again.output
    assert Distiset.load_from_disk(other)["default"]["train"].num_rows == 2
