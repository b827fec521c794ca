"""Mixed column types are caught before paying, and a write error never loses answers."""

from __future__ import annotations

import pytest
from tests.fake_server import FakeServer
from tests.reliability.helpers import generation_pipeline, make_llm

from potstill.errors import BatchWriteError, PipelineValidationError
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts, Step, StepInput, StepOutput
from potstill.steps.tasks import TextGeneration

ROWS = 30
MAX_CONCURRENT = 4


def test_mixed_types_in_the_data_are_refused_before_any_request(
    fake_server: FakeServer,
) -> None:
    pipeline, _ = generation_pipeline(fake_server, ROWS)
    load = pipeline.dag.steps["load_data_from_dicts_0"]
    load.data = [{**row, "extra": 1} for row in load.data]
    load.data[17]["extra"] = "x"
    with pytest.raises(PipelineValidationError) as raised:
        pipeline.run()
    message = str(raised.value)
    assert "'extra'" in message
    assert "int in row 0 (1)" in message and "str in row 17 ('x')" in message
    assert fake_server.requests == []


class Extra(Step):
    """Adds `extra`: an int, or a str for the rows listed in `as_text`."""

    as_text: list[str] = []

    @property
    def inputs(self) -> list[str]:
        return ["generation"]

    @property
    def outputs(self) -> list[str]:
        return ["extra"]

    def process(self, inputs: StepInput) -> StepOutput:
        """Adds the column.

        Args:
            inputs: the rows.
        """
        yield [{**row, "extra": "x" if row["instruction"] in self.as_text else 1} for row in inputs]


def extra_pipeline(server: FakeServer, as_text: list[str]) -> Pipeline:
    with Pipeline(name="mixed-output") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": f"q{i}"} for i in range(ROWS)])
        llm = make_llm(server, max_concurrent_requests=MAX_CONCURRENT)
        task = TextGeneration(llm=llm, input_batch_size=10)
        load >> task >> Extra(name="extra_step", as_text=as_text, input_batch_size=10)
    return pipeline


@pytest.mark.parametrize(
    ("as_text", "expected"),
    [
        (["q3"], ["'extra_step'", "batch 0", "'extra'", "int in row 0", "str in row 3"]),
        ([f"q{i}" for i in range(10, 20)], ["'extra_step'", "batch 1", "cannot be merged"]),
    ],
    ids=["within-a-batch", "across-batches"],
)
def test_a_batch_that_cannot_be_stored_fails_naming_the_step_and_keeps_the_answers(
    fake_server: FakeServer, as_text: list[str], expected: list[str]
) -> None:
    with pytest.raises(BatchWriteError) as raised:
        extra_pipeline(fake_server, as_text).run()
    for part in expected:
        assert part in str(raised.value)
    sent = len(fake_server.requests)
    assert 0 < sent <= ROWS

    rows = extra_pipeline(fake_server, as_text=[]).run()["default"]["train"]  # fixed
    assert rows["extra"] == [1] * ROWS
    assert rows["generation"] == [f"Echo: q{i}" for i in range(ROWS)]
    # The failed run stopped at once; of what it had asked, only the requests still in flight
    # (cancelled, their answers never received) are sent again.
    assert len(fake_server.requests) <= ROWS + MAX_CONCURRENT
