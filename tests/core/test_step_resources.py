"""Every step's `resources` (distilabel's `StepResources`), what the local engine does with
them, and the Ray engine's entry points that need no cluster: Ray stays optional."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from potstill.errors import PotstillUserError
from potstill.pipeline import Pipeline
from potstill.pipeline.ray.connection import script_executed_in_ray_cluster
from potstill.pipeline.signature import step_signatures
from potstill.steps import LoadDataFromDicts, StepResources
from potstill.steps.keep import KeepColumns

SRC = Path(__file__).resolve().parents[2] / "src"


def pipeline_with_replicas(**resources: object) -> Pipeline:
    with Pipeline(name="resources") as pipeline:
        load = LoadDataFromDicts(data=[{"a": i} for i in range(6)], batch_size=2)
        load >> KeepColumns(name="keep", columns=["a"], resources=resources)
    return pipeline


def test_resources_are_a_runtime_parameter_of_every_step_as_in_distilabel() -> None:
    pipeline = pipeline_with_replicas()
    keep = pipeline.dag.steps["keep"]
    assert keep.resources == StepResources()
    info = {item["name"]: item for item in keep.get_runtime_parameters_info()}
    nested = {item["name"] for item in info["resources"]["runtime_parameters_info"]}
    assert nested == {"replicas", "cpus", "gpus", "memory", "resources"}

    keep.set_runtime_parameters({"resources": {"replicas": "3", "gpus": 1}})
    assert (keep.resources.replicas, keep.resources.gpus) == (3, 1)
    assert keep.dump()["resources"] == {
        "replicas": 3,
        "cpus": None,
        "gpus": 1,
        "memory": None,
        "resources": None,
    }
    with pytest.raises(PotstillUserError, match=r"'replicas'.*resources"):
        keep.set_runtime_parameters({"resources": {"replicas": 0}})


def test_resources_change_no_signature_so_stored_batches_are_reused() -> None:
    one = step_signatures(pipeline_with_replicas().dag)
    many = step_signatures(pipeline_with_replicas(replicas=4, cpus=2).dag)
    assert one == many


def test_the_local_engine_runs_each_step_once_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pipeline = pipeline_with_replicas(replicas=4)
    caplog.set_level(logging.INFO, logger="potstill")

    rows = pipeline.run(use_cache=False)["default"]["train"]

    assert rows["a"] == list(range(6))
    notes = [r.getMessage() for r in caplog.records if "apply on Ray only" in r.getMessage()]
    assert len(notes) == 1 and "keep (replicas=4)" in notes[0]


def test_a_pipeline_without_resources_says_nothing_about_ray(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="potstill")
    pipeline_with_replicas().run(use_cache=False)
    assert "Ray" not in caplog.text


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({}, False),
        ({"RAY_ADDRESS": "auto"}, False),  # an address alone: the user's choice to make
        (
            {"RAY_NODE_TYPE_NAME": "head", "RAY_CLUSTER_NAME": "c", "RAY_ADDRESS": "auto"},
            True,
        ),  # a node of a launched cluster (distilabel's check)
        ({"RAY_JOB_CONFIG_JSON_ENV_VAR": "{}", "RAY_ADDRESS": "1.2.3.4:6379"}, True),  # a job
        ({"POTSTILL_ENGINE": "ray"}, True),
        ({"POTSTILL_ENGINE": "local", "RAY_JOB_CONFIG_JSON_ENV_VAR": "{}"}, False),
    ],
)
def test_when_run_goes_to_ray_by_itself(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], expected: bool
) -> None:
    for name in (
        "RAY_ADDRESS",
        "RAY_NODE_TYPE_NAME",
        "RAY_CLUSTER_NAME",
        "RAY_JOB_CONFIG_JSON_ENV_VAR",
        "POTSTILL_ENGINE",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert script_executed_in_ray_cluster() is expected


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )


def test_ray_pipeline_imports_without_ray_and_asks_for_the_extra_when_used() -> None:
    code = """
import json, sys
sys.modules["ray"] = None  # as if Ray were not installed
from potstill.pipeline import Pipeline, RayPipeline
from potstill.steps import LoadDataFromDicts
with Pipeline(name="p") as pipeline:
    LoadDataFromDicts(data=[{"a": 1}])
try:
    pipeline.ray()
    error = None
except ImportError as caught:
    error = str(caught)
print(json.dumps({"error": error, "class": RayPipeline.__name__}))
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["class"] == "RayPipeline"
    assert "pip install 'potstill[ray]'" in outcome["error"]


def test_the_ray_engine_is_not_imported_by_potstill() -> None:
    code = """
import json, sys
import potstill, potstill.pipeline, potstill.steps, potstill.steps.tasks
from potstill.pipeline import Pipeline, RayPipeline
print(json.dumps({"ray": "ray" in sys.modules}))
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"ray": False}
