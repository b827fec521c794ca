"""Pipelines as distilabel 1.1 scripts build, save and run them, with `potstill` imports:
`potstill.pipeline.local`, saved configs, routing batch functions."""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any, List

import pytest
from typer.testing import CliRunner

from potstill.cli.app import app
from potstill.errors import PipelineValidationError, UnsafeConfigError
from potstill.pipeline import Pipeline, routing_batch_function, sample_n_steps
from potstill.pipeline.base import BasePipeline
from potstill.pipeline.local import Pipeline as LocalPipeline
from potstill.pipeline.routing_batch_function import RoutingBatchFunction
from potstill.steps import GlobalStep, LoadDataFromDicts, StepInput, step
from potstill.steps.typing import StepOutput


@step(inputs=["n"], outputs=["by"])
def TagA(inputs: StepInput) -> StepOutput:
    yield [{**row, "by": "a"} for row in inputs]


@step(inputs=["n"], outputs=["by"])
def TagB(inputs: StepInput) -> StepOutput:
    yield [{**row, "by": "b"} for row in inputs]


@step(inputs=["n"], outputs=["by"])
def TagC(inputs: StepInput) -> StepOutput:
    yield [{**row, "by": "c"} for row in inputs]


@step(inputs=["by"], outputs=["taggers"])
def CombineTags(*inputs: StepInput) -> StepOutput:
    """Joins the routed branches: one list per branch that got the routed batch."""
    rows = []
    for versions in zip(*inputs):
        assert len({row["n"] for row in versions}) == 1, "rows of one routed batch align"
        rows.append({"n": versions[0]["n"], "taggers": [row["by"] for row in versions]})
    yield rows


@routing_batch_function
def first_two(steps: List[str]) -> List[str]:
    return steps[:2]


def numbers(count: int, batch_size: int) -> LoadDataFromDicts:
    return LoadDataFromDicts(data=[{"n": n} for n in range(count)], batch_size=batch_size)


# -- potstill.pipeline.local -----------------------------------------------------------


def test_the_local_pipeline_of_distilabels_docs(tmp_path: Path) -> None:
    def describe(pipeline: BasePipeline) -> str:  # a type hint from `pipeline.base`
        return pipeline.name

    with LocalPipeline(name="local", cache_dir=tmp_path) as pipeline:
        numbers(3, 2) >> TagA()

    assert describe(pipeline) == "local"
    assert pipeline.run()["default"]["train"]["by"] == ["a", "a", "a"]


def _saved_as_local(pipeline: Pipeline, path: Path) -> Path:
    dump = pipeline.dump()
    dump["pipeline"]["type_info"] = {"module": "potstill.pipeline.local", "name": "Pipeline"}
    return pipeline.save(path, format="yaml", dump=dump)


def test_a_config_naming_potstill_pipeline_local_loads(tmp_path: Path) -> None:
    with Pipeline(name="saved-local") as pipeline:
        numbers(4, 2) >> TagB()
    config = _saved_as_local(pipeline, tmp_path / "pipeline.yaml")

    for loaded in (Pipeline.from_yaml(config), Pipeline.from_file(config)):
        assert isinstance(loaded, Pipeline)
        assert loaded.run(use_cache=False)["default"]["train"]["by"] == ["b"] * 4

    result = CliRunner().invoke(
        app,
        ["pipeline", "run", "--config", str(config), "-o", str(tmp_path / "out")],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    info = CliRunner().invoke(app, ["pipeline", "info", "--config", str(config)])
    assert info.exit_code == 0, info.output
    assert "saved-local" in info.output


def test_a_config_naming_a_foreign_module_is_still_refused(tmp_path: Path) -> None:
    with Pipeline(name="foreign") as pipeline:
        numbers(1, 1) >> TagA()
    dump = pipeline.dump()
    dump["pipeline"]["type_info"] = {"module": "os", "name": "system"}
    with pytest.raises(UnsafeConfigError):
        Pipeline.from_dict(dump)


# -- routing batch functions -------------------------------------------------------------


def routed_pipeline(routing: Any, **kwargs: Any) -> tuple[Pipeline, list[Any]]:
    with Pipeline(name="routing", **kwargs) as pipeline:
        load = numbers(10, 3)
        taggers = [TagA(name="a"), TagB(name="b"), TagC(name="c", input_batch_size=2)]
        load >> routing >> taggers >> CombineTags(name="combine")
    return pipeline, taggers


def test_sample_n_steps_sends_each_batch_to_n_successors_and_the_join_aligns() -> None:
    random.seed(7)
    routing = sample_n_steps(2)
    pipeline, _ = routed_pipeline(routing)

    rows = pipeline.run(use_cache=False)["default"]["train"].to_list()

    assert [row["n"] for row in rows] == list(range(10))
    assert all(len(row["taggers"]) == 2 for row in rows)
    # every generator batch (3 rows) went to the same two steps, whatever their batch sizes
    decisions = routing._routed_batch_registry["load_data_from_dicts_0"]
    assert sorted(decisions) == [0, 1, 2, 3]
    for batch, chosen in decisions.items():
        for row in rows[batch * 3 : batch * 3 + 3]:
            assert row["taggers"] == [name for name in ("a", "b", "c") if name in chosen]
    assert len({tuple(sorted(chosen)) for chosen in decisions.values()}) > 1, "random draws"


def test_a_decorated_routing_function_decides_per_batch() -> None:
    pipeline, _ = routed_pipeline(first_two)

    distiset = pipeline.run(use_cache=False)

    assert distiset["default"]["train"]["taggers"] == [["a", "b"]] * 10


def test_routed_steps_that_are_leaves_get_only_their_batches() -> None:
    with Pipeline(name="routed-leaves") as pipeline:
        load = numbers(6, 2)

        calls: list[int] = []

        @routing_batch_function()
        def alternate(steps: List[str]) -> List[str]:
            calls.append(1)
            return [steps[(len(calls) - 1) % 2]]

        load >> alternate >> [TagA(name="a"), TagB(name="b")]

    distiset = pipeline.run(use_cache=False)

    assert distiset["a"]["train"]["n"] == [0, 1, 4, 5]
    assert distiset["b"]["train"]["n"] == [2, 3]


def test_connect_with_a_routing_batch_function() -> None:
    with Pipeline(name="connect-routing") as pipeline:
        load = numbers(4, 2)
        a, b = TagA(name="a"), TagB(name="b")
        load.connect(a, b, routing_batch_function=sample_n_steps(1))

    assert pipeline.dag.successors(load.name) == ["a", "b"]
    distiset = pipeline.run(use_cache=False)
    routed = [row["n"] for name in ("a", "b") for row in distiset[name]["train"]]
    assert sorted(routed) == [0, 1, 2, 3], "each batch went to exactly one of them"


def test_a_resumed_run_routes_each_batch_as_the_first_run_did(tmp_path: Path) -> None:
    random.seed(1)
    pipeline, _ = routed_pipeline(sample_n_steps(2), cache_dir=tmp_path)
    first = pipeline.run()["default"]["train"]["taggers"]

    # Lose everything after the generator (a run killed mid-way keeps less than this),
    # and draw differently: the stored decisions still decide.
    steps_dir = tmp_path / "routing" / "steps"
    for folder in steps_dir.iterdir():
        if not folder.name.startswith("load_data_from_dicts_0-"):
            shutil.rmtree(folder)
    random.seed(2)
    pipeline, _ = routed_pipeline(sample_n_steps(2), cache_dir=tmp_path)
    assert pipeline.run()["default"]["train"]["taggers"] == first


def test_routing_survives_dump_and_load(tmp_path: Path) -> None:
    pipeline, _ = routed_pipeline(sample_n_steps(2))
    dump = pipeline.dump()

    assert dump["pipeline"]["routing_batch_functions"] == [
        {
            "step": "load_data_from_dicts_0",
            "routing_batch_function": {
                "description": "Sample 2 steps from the list of downstream steps.",
                "type_info": {
                    "module": "potstill.pipeline.routing_batch_function",
                    "name": "sample_n_steps",
                    "kwargs": {"n": 2},
                },
            },
        }
    ]
    loaded = Pipeline.from_yaml(pipeline.save(tmp_path / "p.yaml", format="yaml"))
    routing = loaded.dag.routing_batch_function("load_data_from_dicts_0")
    assert isinstance(routing, RoutingBatchFunction)
    assert (
        routing.dump() == dump["pipeline"]["routing_batch_functions"][0]["routing_batch_function"]
    )
    assert all(len(t) == 2 for t in loaded.run(use_cache=False)["default"]["train"]["taggers"])

    decorated, _ = routed_pipeline(first_two)
    again = Pipeline.from_dict(decorated.dump())
    assert again.run(use_cache=False)["default"]["train"]["taggers"] == [["a", "b"]] * 10

    unknown = decorated.dump()
    unknown["pipeline"]["routing_batch_functions"][0]["routing_batch_function"]["type_info"][
        "module"
    ] = "somewhere.else"
    with pytest.raises(UnsafeConfigError, match=r"somewhere\.else"):
        Pipeline.from_dict(unknown)


def test_changing_the_routing_function_invalidates_the_cache(tmp_path: Path) -> None:
    pipeline, _ = routed_pipeline(first_two, cache_dir=tmp_path)
    assert pipeline.run()["default"]["train"]["taggers"][0] == ["a", "b"]

    @routing_batch_function
    def last_two(steps: List[str]) -> List[str]:
        return steps[-2:]

    pipeline, _ = routed_pipeline(last_two, cache_dir=tmp_path)
    assert pipeline.run()["default"]["train"]["taggers"][0] == ["b", "c"]


def test_routing_mistakes_are_reported_before_running() -> None:
    with Pipeline(name="too-many") as pipeline:
        numbers(2, 1) >> sample_n_steps(3) >> [TagA(), TagB()]
    with pytest.raises(PipelineValidationError, match="routes each batch to 3 successors"):
        pipeline.run(use_cache=False)

    with Pipeline(name="mixed-join") as pipeline:
        load = numbers(2, 1)
        other = numbers(2, 1)
        a, b = TagA(), TagB()
        load >> sample_n_steps(1) >> [a, b]
        [a, other] >> CombineTags()
    with pytest.raises(PipelineValidationError, match="same routing step"):
        pipeline.run(use_cache=False)

    class Everything(GlobalStep):
        def process(self, *inputs: StepInput) -> StepOutput:
            yield inputs[0]

    with Pipeline(name="global-routed") as pipeline:
        numbers(2, 1) >> sample_n_steps(1) >> [Everything(), TagA()]
    with pytest.raises(PipelineValidationError, match="global step"):
        pipeline.run(use_cache=False)

    with pytest.raises(ValueError, match="list of steps"):
        with Pipeline(name="not-a-list"):
            numbers(2, 1) >> sample_n_steps(1) >> TagA()  # type: ignore[operator]


def test_a_failing_routing_function_stops_the_run_naming_the_step() -> None:
    @routing_batch_function
    def nowhere(steps: List[str]) -> List[str]:
        return ["missing_step"]

    with Pipeline(name="bad-routing") as pipeline:
        numbers(2, 1) >> nowhere >> [TagA(), TagB()]
    with pytest.raises(RuntimeError, match=r"load_data_from_dicts_0.*missing_step"):
        pipeline.run(use_cache=False)


def test_route_batch_standalone() -> None:
    class Batch:
        step_name = "upstream"
        seq_no = 4

    assert first_two.route_batch(Batch(), ["x", "y", "z"]) == ["x", "y"]
    assert first_two._routed_batch_registry["upstream"][4] == ["x", "y"]
    assert sorted(sample_n_steps(2)(Batch(), ["x", "y", "z"])) != []
