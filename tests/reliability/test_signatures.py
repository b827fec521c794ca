"""What decides reuse: the data and config that change outputs, the same in every process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import validate_call
from tests.fake_server import FakeServer
from tests.reliability.helpers import generation_pipeline

from potstill.llms import LLM
from potstill.llms.typing import GenerateOutput
from potstill.steps.tasks.typing import ChatType

ROOT = Path(__file__).resolve().parents[2]


def test_a_data_column_named_like_an_llm_setting_is_part_of_the_signature(
    fake_server: FakeServer,
) -> None:
    pipeline, _ = generation_pipeline(fake_server, 3)
    load = pipeline.dag.steps["load_data_from_dicts_0"]
    load.data = [{"instruction": f"q{i}", "timeout": 1, "max_retries": 1} for i in range(3)]
    assert pipeline.run()["default"]["train"]["timeout"] == [1, 1, 1]

    load.data = [{"instruction": f"q{i}", "timeout": 2, "max_retries": 5} for i in range(3)]
    rows = pipeline.run()["default"]["train"]
    assert rows["timeout"] == [2, 2, 2]
    assert rows["max_retries"] == [5, 5, 5]


def print_in_new_process() -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "tests.reliability.callable_config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])},
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_callables_in_a_config_give_the_same_signature_and_keys_in_every_process() -> None:
    first, second = print_in_new_process(), print_in_new_process()
    assert first == second


def test_the_pipeline_response_cache_goes_to_the_llms_cache_dir(
    fake_server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POTSTILL_RESPONSE_CACHE_DIR", str(tmp_path / "default-dir"))
    pipeline, task = generation_pipeline(fake_server, 3)
    pipeline.use_response_cache = True
    task.llm.response_cache_dir = str(tmp_path / "llm-dir")
    pipeline.run()
    assert len((tmp_path / "llm-dir" / "responses.jsonl").read_bytes().splitlines()) == 3
    assert not (tmp_path / "default-dir").exists()


class DownLLM(LLM):
    """A local LLM whose `generate` always fails."""

    @property
    def model_name(self) -> str:
        return "down"

    @validate_call
    def generate(self, inputs: list[ChatType], num_generations: int = 1) -> list[GenerateOutput]:
        """Fails.

        Args:
            inputs: the conversations.
            num_generations: ignored.
        """
        raise RuntimeError("the model is not there")


def test_no_inputs_and_a_failing_generate_give_no_outputs_not_an_index_error() -> None:
    llm = DownLLM()
    llm.load()
    assert llm.generate_outputs([]) == []
    [failed] = llm.generate_outputs([[{"role": "user", "content": "hi"}]])
    assert failed == [None] and "not there" in failed.errors[0]
