"""What Ray cannot run yet (spending limits, provider batch jobs) is refused before Ray
starts, with an error that says what to do. (The same refusals on a running cluster, with
limits given as runtime parameters, are in tests/on_ray.)"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from potstill.errors import PotstillUserError
from potstill.llms import OpenAILLM
from potstill.pipeline import Pipeline, RayPipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration


def pipeline_with(**llm_fields: Any) -> Pipeline:
    with Pipeline(name="refused-on-ray") as pipeline:
        LoadDataFromDicts(data=[{"instruction": "q"}]) >> TextGeneration(
            name="generate",
            llm=OpenAILLM(
                model="gpt-4o-mini", base_url="http://127.0.0.1:9", api_key="k", **llm_fields
            ),
        )
    return pipeline


@pytest.mark.parametrize(
    ("pipeline", "run_kwargs", "message"),
    [
        (lambda: pipeline_with(), {"max_cost": 2.0}, r"\(max_cost=2\)"),
        (lambda: pipeline_with(max_cost=1.0), {}, r"step 'generate': llm.max_cost=1"),
        (
            lambda: pipeline_with(use_offline_batch_generation=True),
            {},
            r"'generate' use provider batch jobs",
        ),
    ],
)
def test_refused_before_ray_starts(
    pipeline: Any, run_kwargs: dict, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    connections: list[RayPipeline] = []

    def connect(self: RayPipeline) -> Any:
        connections.append(self)  # where `ray.init` would start a local cluster
        return contextlib.nullcontext()

    monkeypatch.setattr(RayPipeline, "_connection", connect)

    with pytest.raises(PotstillUserError, match=message) as refused:
        pipeline().ray().run(use_cache=False, **run_kwargs)

    assert "without .ray() / --ray" in str(refused.value)
    assert connections == []
