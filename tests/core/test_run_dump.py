"""The dump a run makes of each step: equal to `dump()`, without copying plain inline rows."""

from __future__ import annotations

from potstill.pipeline import Pipeline
from potstill.pipeline.run_dump import MIN_ROWS, run_dump
from potstill.steps import LoadDataFromDicts


def _load(rows: list[dict]) -> LoadDataFromDicts:
    with Pipeline(name="dumps"):
        return LoadDataFromDicts(name="load", data=rows)


def test_plain_inline_rows_are_referred_to_not_copied() -> None:
    rows = [
        {"instruction": f"q{i}", "score": i / 3, "tags": ["a"], "meta": {"ok": True}}
        for i in range(MIN_ROWS)
    ]
    step = _load(rows)

    dump = run_dump(step)

    assert dump == step.dump()
    assert list(dump) == list(step.dump())  # same keys, same order
    assert dump["data"] is step.data


def test_rows_a_json_dump_would_change_are_copied_as_dump_does() -> None:
    rows = [{"instruction": f"q{i}", "pair": (1, 2)} for i in range(MIN_ROWS)]
    rows[-1]["score"] = float("nan")  # a JSON dump writes None
    step = _load(rows)

    dump = run_dump(step)

    assert dump == step.dump()
    assert dump["data"] is not step.data and dump["data"][0]["pair"] == [1, 2]


def test_short_lists_are_dumped_as_usual() -> None:
    step = _load([{"instruction": "q"}] * (MIN_ROWS - 1))

    assert run_dump(step)["data"] is not step.data
