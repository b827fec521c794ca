"""The ways onto Ray: `potstill pipeline run --ray`, and `Pipeline.run` inside a Ray job
(or with `POTSTILL_ENGINE=ray`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from datasets import load_from_disk
from tests.on_ray.conftest import CLUSTER_ENV, ROOT, RayCluster
from tests.on_ray.steps import Double, WhereAmI

from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts

pytestmark = pytest.mark.ray


def test_the_cli_runs_a_saved_pipeline_on_the_cluster(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    with Pipeline(name="cli-ray") as pipeline:
        load = LoadDataFromDicts(name="load", data=[{"x": i} for i in range(30)], batch_size=5)
        load >> Double(name="double", input_batch_size=4)
    config = pipeline.save(tmp_path / "pipeline.yaml", format="yaml")

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "potstill.cli.app",
            "pipeline",
            "run",
            "--config",
            str(config),
            "--allow-module",
            "tests.on_ray.steps",
            "--param",
            "double.resources.replicas=2",
            "--ray-address",
            ray_cluster.address,
            "--output",
            str(tmp_path / "out"),
            "--no-progress",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **CLUSTER_ENV},
        timeout=180,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert "Step 'double' runs on 2 replica(s)" in result.stderr
    saved = load_from_disk(str(tmp_path / "out" / "default"))["train"]
    assert saved["y"] == [2 * i for i in range(30)]


def test_run_goes_to_ray_by_itself_when_asked(
    ray_cluster: RayCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Pipeline(name="auto") as pipeline:
        load = LoadDataFromDicts(data=[{"x": i} for i in range(10)])
        load >> WhereAmI(name="where")

    monkeypatch.setenv("POTSTILL_ENGINE", "ray")
    on_ray = pipeline.run(use_cache=False)["default"]["train"]
    monkeypatch.setenv("POTSTILL_ENGINE", "local")
    local = pipeline.run(use_cache=False)["default"]["train"]

    assert set(on_ray["node"]) <= {ray_cluster.head, ray_cluster.gpu_node}
    assert set(local["node"]) == {ray_cluster.head}  # this process joined the head node
    assert os.getpid() in local["pid"] and os.getpid() not in on_ray["pid"]
