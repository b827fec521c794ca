"""A config cannot make potstill run code from a model repository unless the user says so.

`trust_remote_code=True` set in Python code is the user's own choice and stays allowed; the
same setting read from a config (file or URL) is refused unless allowed explicitly, as
imports of modules outside potstill are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from potstill.cli.app import app
from potstill.errors import RemoteCodeError
from potstill.llms import LLM, TransformersLLM, vLLM
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration


def save_pipeline(llm: LLM, path: Path, format: str = "yaml") -> Path:
    with Pipeline(name="remote-code") as pipeline:
        LoadDataFromDicts(name="load", data=[{"instruction": "hi"}]) >> TextGeneration(
            name="generate", llm=llm
        )
    return pipeline.save(path, format=format)  # type: ignore[arg-type]


REMOTE = {
    "transformers": lambda: TransformersLLM(model="org/custom-model", trust_remote_code=True),
    "vllm": lambda: vLLM(model="org/custom-model", trust_remote_code=True),
    "transformers-model-kwargs": lambda: TransformersLLM(
        model="org/custom-model", model_kwargs={"trust_remote_code": True}
    ),
    "vllm-extra-kwargs": lambda: vLLM(
        model="org/custom-model", extra_kwargs={"trust_remote_code": True}
    ),
}


@pytest.mark.parametrize("kind", sorted(REMOTE))
@pytest.mark.parametrize("format", ["yaml", "json"])
def test_a_config_that_trusts_remote_code_is_refused(
    kind: str, format: str, tmp_path: Path
) -> None:
    config = save_pipeline(REMOTE[kind](), tmp_path / f"pipeline.{format}", format)
    load = Pipeline.from_yaml if format == "yaml" else Pipeline.from_json

    with pytest.raises(RemoteCodeError, match=r"steps\[generate\]\.step\.llm\.") as info:
        load(config)

    assert "trust_remote_code" in str(info.value)
    assert "allow_remote_code=True" in str(info.value)


@pytest.mark.parametrize("kind", sorted(REMOTE))
def test_allowing_remote_code_loads_it(kind: str, tmp_path: Path) -> None:
    original = REMOTE[kind]()
    config = save_pipeline(original, tmp_path / "pipeline.yaml")

    pipeline = Pipeline.from_yaml(config, allow_remote_code=True)

    llm = pipeline.dag.steps["generate"].llm
    assert type(llm) is type(original) and llm.dump() == original.dump()


def test_an_llm_dump_that_trusts_remote_code_is_refused(tmp_path: Path) -> None:
    dump = TransformersLLM(model="org/custom-model", trust_remote_code=True).dump()

    with pytest.raises(RemoteCodeError, match="trust_remote_code"):
        LLM.from_dict(dump)
    assert LLM.from_dict(dump, allow_remote_code=True).trust_remote_code is True


def test_a_config_spelling_true_another_way_is_refused() -> None:
    dump = TransformersLLM(model="org/custom-model").dump()
    dump["trust_remote_code"] = "yes"  # pydantic reads it as True

    with pytest.raises(RemoteCodeError):
        LLM.from_dict(dump)


def test_a_config_without_remote_code_loads(tmp_path: Path) -> None:
    config = save_pipeline(TransformersLLM(model="org/custom-model"), tmp_path / "p.yaml")

    pipeline = Pipeline.from_yaml(config)

    assert pipeline.dag.steps["generate"].llm.trust_remote_code is False


def test_python_code_may_trust_remote_code() -> None:
    llm = TransformersLLM(model="org/custom-model", trust_remote_code=True)

    assert llm.trust_remote_code is True


@pytest.mark.parametrize("command", ["info", "run"])
def test_the_cli_refuses_it_without_the_flag(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    config = save_pipeline(REMOTE["transformers"](), tmp_path / "pipeline.yaml")

    result = CliRunner().invoke(app, ["pipeline", command, "--config", str(config)])

    assert result.exit_code == 1
    assert "trust_remote_code" in result.output
    assert "--allow-remote-code" in result.output


def test_the_cli_flag_allows_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    config = save_pipeline(REMOTE["transformers"](), tmp_path / "pipeline.yaml")

    result: Any = CliRunner().invoke(
        app, ["pipeline", "info", "--config", str(config), "--allow-remote-code"]
    )

    assert result.exit_code == 0, result.output
    assert "TransformersLLM" in result.output
