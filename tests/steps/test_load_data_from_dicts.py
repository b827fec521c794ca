"""`LoadDataFromDicts` keeps a list of plain rows as given (no copy of 100,000 dicts) and
still validates anything else."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts


def test_a_list_of_plain_rows_is_used_as_given_and_batches_are_copies() -> None:
    rows = [{"instruction": f"q{i}"} for i in range(5)]
    with Pipeline(name="as-given"):
        load = LoadDataFromDicts(data=rows, batch_size=2)

    assert load.data is rows
    batches = list(load.process())
    assert [batch for batch, _ in batches] == [rows[0:2], rows[2:4], rows[4:5]]
    batches[0][0][0]["instruction"] = "changed"  # a step downstream changing its input
    assert rows[0] == {"instruction": "q0"}


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ([], "at least 1 item"),
        ([{"a": 1}, 3], "data.1"),
        ([{1: "x"}], "data.0"),
        ("rows", "valid list"),
    ],
)
def test_other_values_are_validated(data: object, where: str) -> None:
    with Pipeline(name="validated"), pytest.raises(ValidationError, match=where):
        LoadDataFromDicts(data=data)


def test_a_tuple_of_rows_is_accepted_as_a_list() -> None:
    with Pipeline(name="tuple"):
        load = LoadDataFromDicts(data=({"a": 1}, {"a": 2}))

    assert load.data == [{"a": 1}, {"a": 2}]
