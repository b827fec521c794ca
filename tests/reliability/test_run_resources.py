"""A run gives back what it took: journal memory, file descriptors, maps, disk padding."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from tests.fake_server import FakeServer
from tests.reliability.helpers import generation_pipeline, make_llm

from potstill.llms import cache
from potstill.pipeline import Pipeline
from potstill.pipeline.engine import PipelineRunError
from potstill.steps import GeneratorStep
from potstill.steps.tasks import TextGeneration
from potstill.steps.typing import GeneratorStepOutput

ROWS = 40


def held_files(folder: Path) -> list[str]:
    """Files under `folder` this process holds open or mapped."""
    opened = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            opened.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue
    with open("/proc/self/maps") as maps:
        mapped = [line.split(maxsplit=5)[-1].strip() for line in maps]
    return [path for path in opened + mapped if path.startswith(str(folder))]


def assert_given_back(pipeline: Pipeline) -> None:
    folder = pipeline.cache_dir
    assert [path for path in cache._open_stores if str(path).startswith(str(folder))] == []
    assert held_files(folder) == []
    for journal in folder.glob("steps/*/requests.jsonl"):
        data = journal.read_bytes()
        assert data.endswith(b"\n") and b"\x00" not in data  # trimmed: no map padding


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_a_finished_run_closes_and_trims_its_journals(fake_server: FakeServer) -> None:
    pipeline, _ = generation_pipeline(fake_server, ROWS)
    for _ in range(3):  # nothing piles up across runs in one process
        pipeline.run(use_cache=False)
        assert_given_back(pipeline)


class BrokenSource(GeneratorStep):
    """Yields two batches of `q0..`, then fails."""

    @property
    def outputs(self) -> list[str]:
        return ["instruction"]

    def process(self, offset: int = 0) -> GeneratorStepOutput:
        """Yields, then raises.

        Args:
            offset: ignored.
        """
        yield [{"instruction": f"q{i}"} for i in range(10)], False
        yield [{"instruction": f"q{i}"} for i in range(10, 20)], False
        time.sleep(0.5)  # the task answers the first batches meanwhile
        raise OSError("the source went away")


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_a_failed_run_gives_back_as_much(fake_server: FakeServer) -> None:
    with Pipeline(name="broken") as pipeline:
        BrokenSource(batch_size=10) >> TextGeneration(
            llm=make_llm(fake_server), input_batch_size=10
        )
    with pytest.raises(PipelineRunError, match="the source went away"):
        pipeline.run()
    assert fake_server.requests  # the journal was in use when the run failed
    assert_given_back(pipeline)
