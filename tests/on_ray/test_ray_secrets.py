"""An API key reaches the replicas (in memory, with the pickled step) and is never written to
disk: not in Ray's temp dir (logs, spilled objects), not in the run's folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.fake_server import FakeServer
from tests.on_ray.conftest import RayCluster
from tests.reliability.helpers import generation_pipeline

pytestmark = pytest.mark.ray

SECRET = "sk-ray-do-not-write-4b1d7c"


def files_containing(root: Path, text: bytes) -> list[Path]:
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            if not path.is_file():  # sockets, fifos
                continue
            try:
                if text in path.read_bytes():
                    found.append(path)
            except OSError:  # a file being removed, or not readable
                continue
    return found


def test_the_api_key_reaches_the_replicas_and_is_never_written(
    ray_cluster: RayCluster, fake_server: FakeServer, tmp_path: Path
) -> None:
    fake_server.configure(require_api_key=SECRET)
    pipeline, _ = generation_pipeline(fake_server, 30, name="secret", batch_size=5)
    pipeline.dag.steps["text_generation_0"].llm.api_key = SECRET  # type: ignore[attr-defined]

    distiset = pipeline.ray().run(params={"text_generation_0": {"resources": {"replicas": 2}}})

    # every request carried the key (the server refuses any other)
    assert distiset["default"]["train"]["generation"] == [f"Echo: q{i}" for i in range(30)]
    assert {request.outcome for request in fake_server.requests} == {"ok"}
    assert files_containing(ray_cluster.temp_dir, SECRET.encode()) == []
    assert files_containing(Path(os.environ["POTSTILL_CACHE_DIR"]), SECRET.encode()) == []
    assert files_containing(tmp_path, SECRET.encode()) == []
