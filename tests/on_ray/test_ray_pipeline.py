"""The same pipeline on Ray: the same Distiset as the local engine, work on every node."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.fake_server import FakeServer
from tests.on_ray.conftest import RayCluster
from tests.on_ray.steps import Double, FailOn7, Total, WhereAmI
from tests.reliability.helpers import make_llm

from potstill.errors import PotstillUserError
from potstill.pipeline import Pipeline, RayPipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration

pytestmark = pytest.mark.ray

ROWS = 60


def mixed_pipeline(server: FakeServer, name: str, pipeline_class: Any = Pipeline) -> Any:
    """A generator, a plain step, a task on the loopback server and a global step, with
    batch sizes that do not line up."""
    with pipeline_class(name=name) as pipeline:
        load = LoadDataFromDicts(
            data=[{"x": i, "instruction": f"q{i}"} for i in range(ROWS)], batch_size=8
        )
        double = Double(name="double", input_batch_size=5)
        generate = TextGeneration(name="generate", llm=make_llm(server), input_batch_size=7)
        load >> double >> generate >> Total(name="total")
    return pipeline


REPLICAS = {"double": {"resources": {"replicas": 2}}, "generate": {"resources": {"replicas": 2}}}
REPLICAS_OF_GENERATE = {"generate": {"resources": {"replicas": 2}}}


def test_the_distiset_is_the_local_engines_row_for_row(
    ray_cluster: RayCluster, fake_server: FakeServer
) -> None:
    local = mixed_pipeline(fake_server, "local").run(use_cache=False)
    sent_locally = len(fake_server.requests)
    on_ray = mixed_pipeline(fake_server, "on-ray").ray().run(params=REPLICAS, use_cache=False)

    assert list(on_ray) == list(local) == ["default"]
    assert on_ray["default"]["train"].to_list() == local["default"]["train"].to_list()
    rows = on_ray["default"]["train"]
    assert rows["y"] == [2 * i for i in range(ROWS)]
    assert rows["generation"] == [f"Echo: q{i}" for i in range(ROWS)]
    assert rows["total"] == [sum(range(0, 2 * ROWS, 2))] * ROWS
    assert len(fake_server.requests) == 2 * sent_locally  # each request once per run


def test_rows_are_processed_on_both_nodes(ray_cluster: RayCluster) -> None:
    with Pipeline(name="spread") as pipeline:
        load = LoadDataFromDicts(data=[{"x": i} for i in range(80)], batch_size=10)
        load >> WhereAmI(name="where", input_batch_size=5)

    rows = pipeline.ray().run(params={"where": {"resources": {"replicas": 2}}}, use_cache=False)
    train = rows["default"]["train"]

    assert set(train["node"]) == {ray_cluster.head, ray_cluster.gpu_node}
    assert len(set(train["pid"])) == 2
    assert train["x"] == list(range(80))


def test_a_ray_pipeline_is_built_like_a_pipeline_and_dumps_as_one(
    ray_cluster: RayCluster, fake_server: FakeServer
) -> None:
    pipeline = mixed_pipeline(fake_server, "built", pipeline_class=RayPipeline)

    assert isinstance(pipeline, Pipeline)
    assert pipeline.dump()["pipeline"]["type_info"] == Pipeline.type_info()
    rows = pipeline.run(use_cache=False)["default"]["train"]
    assert rows["generation"] == [f"Echo: q{i}" for i in range(ROWS)]
    # the saved config is engine-neutral: it loads as a local pipeline
    loaded = Pipeline.from_dict(json.loads(json.dumps(pipeline.dump())))
    assert type(loaded) is Pipeline


def test_a_step_error_fails_only_its_batch(ray_cluster: RayCluster) -> None:
    with Pipeline(name="errors") as pipeline:
        load = LoadDataFromDicts(data=[{"x": i} for i in range(20)], batch_size=5)
        load >> FailOn7(name="fail", input_batch_size=5)

    distiset = pipeline.ray().run(params={"fail": {"resources": {"replicas": 2}}}, use_cache=False)
    rows = distiset["default"]["train"].to_list()

    assert [row["x"] for row in rows] == list(range(20))
    for row in rows:
        error = (row["potstill_metadata"] or {}).get("error_fail")
        if 5 <= row["x"] < 10:
            assert row["y"] is None and "ValueError: seven is not welcome" in error
        else:
            assert row["y"] == 2 * row["x"] and error is None
    assert distiset.failed_rows.total == 5


def test_the_response_cache_serves_replicas_from_the_drivers_machine(
    ray_cluster: RayCluster, fake_server: FakeServer, tmp_path: Path
) -> None:
    def cached_pipeline() -> Pipeline:
        with Pipeline(name="cached", use_response_cache=True) as pipeline:
            load = LoadDataFromDicts(data=[{"instruction": f"q{i}"} for i in range(20)])
            llm = make_llm(fake_server, response_cache_dir=str(tmp_path / "responses"))
            load >> TextGeneration(name="generate", llm=llm, input_batch_size=5)
        return pipeline

    first = cached_pipeline().ray().run(params=REPLICAS_OF_GENERATE, use_cache=False)
    assert len(fake_server.requests) == 20
    assert (tmp_path / "responses" / "responses.jsonl").is_file()  # on this machine

    second = cached_pipeline().ray().run(params=REPLICAS_OF_GENERATE, use_cache=False)

    assert len(fake_server.requests) == 20  # every answer came from the cache
    rows = second["default"]["train"]
    assert rows["generation"] == first["default"]["train"]["generation"]
    assert rows["generation"] == [f"Echo: q{i}" for i in range(20)]


def test_a_spending_limit_is_refused_on_ray_and_no_zero_cost_is_reported(
    ray_cluster: RayCluster, fake_server: FakeServer
) -> None:
    with pytest.raises(PotstillUserError, match=r"not enforced on Ray yet \(max_cost=5\)"):
        mixed_pipeline(fake_server, "limited").ray().run(max_cost=5.0, use_cache=False)
    assert fake_server.requests == []  # refused before anything was sent

    pipeline = mixed_pipeline(fake_server, "unlimited").ray()
    rows = pipeline.run(use_cache=False)["default"]["train"]
    assert rows["generation"] == [f"Echo: q{i}" for i in range(ROWS)]
    assert pipeline.last_run_cost is None  # the replicas' spending is not added up


def test_provider_batch_jobs_are_refused_on_ray_before_anything_is_sent(
    ray_cluster: RayCluster, fake_server: FakeServer
) -> None:
    with Pipeline(name="jobs-on-ray") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "q"}])
        load >> TextGeneration(
            name="generate", llm=make_llm(fake_server, use_offline_batch_generation=True)
        )

    with pytest.raises(PotstillUserError, match="'generate' use provider batch jobs"):
        pipeline.ray().run(use_cache=False)
    assert fake_server.requests == []
