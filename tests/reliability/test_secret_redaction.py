"""A server that echoes the key it was sent must not leak it anywhere potstill writes.

The loopback server refuses the key and echoes it in its 401 (`Invalid credentials: Bearer
sk-...`). For each way of giving the key (constructor, env var, runtime parameter, CLI
`--param`), the key must not appear in log records, in `potstill_metadata`, in the run
store's files, in the saved dataset or in what the CLI prints. Each test uses a key of its
own, so that no other test's key registration can hide a leak.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import constants as hf_constants
from pydantic import ValidationError
from tests.fake_server import FakeServer

from potstill.llms import InferenceEndpointsLLM, OpenAILLM
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration
from potstill.utils.secrets import MASK

RIGHT_KEY = "sk-the-right-key-0000"


def new_secret() -> str:
    # Short enough that pydantic shows it whole in an error (it elides long inputs).
    return f"sk-{uuid.uuid4().hex[:16]}"


@pytest.fixture
def echoing_server(fake_server: FakeServer) -> FakeServer:
    fake_server.configure(require_api_key=RIGHT_KEY, echo_key_in_errors=True)
    return fake_server


def build(server: FakeServer, **llm_fields: Any) -> tuple[Pipeline, TextGeneration]:
    with Pipeline(name=f"echo-{uuid.uuid4().hex[:8]}") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "q0"}, {"instruction": "q1"}])
        task = TextGeneration(
            llm=OpenAILLM(model="m", base_url=server.openai_base_url, max_retries=0, **llm_fields)
        )
        load >> task
    return pipeline, task


def files_containing(folder: Path, secret: str) -> list[str]:
    return [
        str(path)
        for path in folder.rglob("*")
        if path.is_file() and secret.encode() in path.read_bytes()
    ]


def check_run(
    pipeline: Pipeline,
    task: TextGeneration,
    secret: str,
    server: FakeServer,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    params: dict[str, Any] | None = None,
) -> None:
    caplog.set_level(logging.DEBUG)
    distiset = pipeline.run(params=params or {}, use_cache=False)
    rows = distiset["default"]["train"]
    saved = tmp_path / "saved"
    distiset.save_to_disk(saved)

    assert [request.headers["authorization"] for request in server.requests] == [
        f"Bearer {secret}"
    ] * 2, "the key was sent (and echoed back)"
    errors = [metadata[f"error_{task.name}"] for metadata in rows["potstill_metadata"]]
    assert all("Invalid credentials: Bearer " + MASK in error for error in errors), errors
    assert secret not in json.dumps(rows.to_list())
    assert secret not in caplog.text
    assert "Invalid credentials" in caplog.text, "the failure itself is logged"
    assert files_containing(Path(os.environ["POTSTILL_CACHE_DIR"]), secret) == []
    assert files_containing(saved, secret) == []


def test_key_from_the_constructor(
    echoing_server: FakeServer, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    secret = new_secret()
    pipeline, task = build(echoing_server, api_key=secret)

    check_run(pipeline, task, secret, echoing_server, caplog, tmp_path)


def test_key_from_the_env_var(
    echoing_server: FakeServer,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = new_secret()
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    pipeline, task = build(echoing_server)

    check_run(pipeline, task, secret, echoing_server, caplog, tmp_path)


def test_key_from_a_runtime_parameter(
    echoing_server: FakeServer, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    secret = new_secret()
    pipeline, task = build(echoing_server, api_key="sk-placeholder-key")
    params = {task.name: {"llm": {"api_key": secret}}}

    check_run(pipeline, task, secret, echoing_server, caplog, tmp_path, params)


def test_key_from_the_cli(echoing_server: FakeServer, tmp_path: Path) -> None:
    secret = new_secret()
    pipeline, task = build(echoing_server)
    config = pipeline.save(tmp_path / "pipeline.yaml", format="yaml")
    output = tmp_path / "out"

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "potstill.cli.app",
            "pipeline",
            "run",
            "--config",
            str(config),
            "--param",
            f"{task.name}.llm.api_key={secret}",
            "--output",
            str(output),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "250", "POTSTILL_LOG_LEVEL": "DEBUG"},
    )

    assert result.returncode == 2, result.stderr  # every row failed (a rejected key)
    assert len(echoing_server.requests) == 2
    assert "Invalid credentials" in result.stderr, "the failure itself is logged"
    assert secret not in result.stdout + result.stderr
    assert files_containing(output, secret) == []
    assert files_containing(Path(os.environ["POTSTILL_CACHE_DIR"]), secret) == []


def test_an_echoing_server_does_not_leak_a_token_from_hf_login(
    fake_server: FakeServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    # No `api_key`: the token is the one `hf auth login` saved.
    secret = f"hf_{uuid.uuid4().hex}"
    token_path = tmp_path / "hf" / "token"
    token_path.parent.mkdir()
    token_path.write_text(secret)
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(token_path))
    monkeypatch.setattr(hf_constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf" / "stored"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)  # the server is on loopback
    fake_server.configure(require_api_key=RIGHT_KEY, echo_key_in_errors=True)
    llm = InferenceEndpointsLLM(base_url=f"{fake_server.url}/tgi", max_retries=0)
    llm.load()
    try:
        [output] = llm.generate_outputs([[{"role": "user", "content": "hi"}]])
    finally:
        llm.unload()

    assert output == [None]
    assert fake_server.requests[0].headers["authorization"] == f"Bearer {secret}"
    assert MASK in output.errors[0]
    assert secret not in output.errors[0]
    assert secret not in caplog.text


def test_a_wrong_typed_key_is_not_echoed_by_validation() -> None:
    secret = new_secret()

    with pytest.raises(ValidationError) as info:
        OpenAILLM(model="m", api_key=[secret])

    assert secret not in str(info.value)
    assert "api_key" in str(info.value)
    assert "input_type=list" in str(info.value)


def test_a_model_level_error_does_not_echo_the_key() -> None:
    # The check that one target is given fails for the whole model: its input is every field.
    secret = new_secret()

    with pytest.raises(ValidationError) as info:
        InferenceEndpointsLLM(api_key=secret)

    assert secret not in str(info.value)
    assert "model_id" in str(info.value)


def test_a_wrong_typed_key_assigned_later_is_not_echoed() -> None:
    llm = OpenAILLM(model="m", api_key="sk-placeholder-key")
    secret = new_secret()

    with pytest.raises(ValidationError) as info:
        llm.api_key = [secret]  # type: ignore[assignment]

    assert secret not in str(info.value)


def test_a_header_secret_is_redacted_from_errors(
    echoing_server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    secret = new_secret()
    llm = OpenAILLM(
        model="m",
        base_url=echoing_server.openai_base_url,
        api_key="sk-placeholder-key",
        default_headers={"Authorization": f"Bearer {secret}"},
        max_retries=0,
    )
    llm.load()
    try:
        [output] = llm.generate_outputs([[{"role": "user", "content": "hi"}]])
    finally:
        llm.unload()

    assert output == [None]
    assert secret not in output.errors[0]
    assert secret not in caplog.text
