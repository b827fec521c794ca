"""Long inline datasets in YAML: one row per line, read back as the same values."""

from __future__ import annotations

import io
import math
from typing import Any

import pytest
import yaml

from potstill.utils.serialization import _YAML_DUMPER, _YAML_LOADER
from potstill.utils.yaml_rows import MIN_ROWS, dump_yaml

OPTIONS: dict[str, Any] = {
    "Dumper": _YAML_DUMPER,
    "default_flow_style": False,
    "sort_keys": False,
    "allow_unicode": True,
}

TRICKY_TEXTS = [
    "plain",
    "",
    "  leading and trailing  ",
    'quotes " and \\ backslash',
    "line\nbreak\r\ttab",
    "null",
    "true",
    "1e3",
    "- not a list",
    "key: value # not a comment",
    "café, 漢字, emoji 😀",
    "controls \x00\x07\x1b\x7f\x85\x9f",
    "separators \u2028\u2029 and \ufeff\ufffe\uffff",
    "{not: a mapping}",
]
TRICKY_VALUES = [
    0,
    -7,
    10**30,
    True,
    False,
    None,
    1.5,
    -0.0,
    1e20,
    1e-05,
    float("inf"),
    float("-inf"),
    [],
    {},
    [1, "a", None, [2.5, {"x": "y"}]],
    {"nested": {"deeper": ["z", 3]}},
]


def _rows(count: int) -> list[dict[str, Any]]:
    values: list[Any] = [*TRICKY_TEXTS, *TRICKY_VALUES]
    return [{"text": values[i % len(values)], "i": i} for i in range(count)]


def _document(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "pipeline": {
            "name": "p",
            "steps": [
                {"step": {"name": "load", "data": rows, "batch_size": 50}, "name": "load"},
                {"step": {"name": "other", "input_mappings": {}}, "name": "other"},
            ],
        }
    }


def _written(document: dict[str, Any]) -> str:
    stream = io.StringIO()
    dump_yaml(document, stream, **OPTIONS)
    return stream.getvalue()


def test_a_long_list_of_rows_is_written_one_row_per_line_and_reads_back_the_same() -> None:
    document = _document(_rows(MIN_ROWS + 30))

    text = _written(document)

    assert '      - {"text": "plain", "i": 0}\n' in text
    assert text.count("\n") < MIN_ROWS + 50  # PyYAML writes two lines per row here
    assert yaml.load(text, Loader=_YAML_LOADER) == document
    assert yaml.load(text, Loader=yaml.SafeLoader) == document


def test_values_read_back_exactly_including_floats_yaml_1_1_reads_differently() -> None:
    rows = _rows(MIN_ROWS)
    rows[0] = {"nan": float("nan"), "big": 1e20, "small": 1e-05, "int": 10**30}

    loaded = yaml.load(_written({"data": rows}), Loader=_YAML_LOADER)["data"]

    assert math.isnan(loaded[0]["nan"])
    assert loaded[0]["big"] == 1e20 and isinstance(loaded[0]["big"], float)
    assert loaded[0]["small"] == 1e-05 and loaded[0]["int"] == 10**30
    assert loaded[1:] == rows[1:]


def test_short_lists_and_everything_else_are_written_by_pyyaml_as_before() -> None:
    document = _document(_rows(MIN_ROWS - 1))

    assert _written(document) == yaml.dump(document, **OPTIONS)


@pytest.mark.parametrize(
    "odd",
    [
        {"key": object()},
        {1: "not a text key"},
        {"text": "lone \ud800 surrogate"},
        {"lone \ud800 surrogate": "in a key"},
    ],
    ids=["unknown type", "int key", "lone surrogate", "lone surrogate in a key"],
)
def test_rows_the_flow_writer_does_not_know_are_left_to_pyyaml(odd: dict[Any, Any]) -> None:
    rows: list[Any] = [*_rows(MIN_ROWS), odd]
    document = {"data": rows}

    try:
        expected = yaml.dump(document, **OPTIONS)
    except (yaml.YAMLError, UnicodeError) as error:
        with pytest.raises(type(error)):
            _written(document)
        return
    assert _written(document) == expected


def test_a_list_under_a_key_pyyaml_writes_in_the_long_form_is_left_to_pyyaml() -> None:
    document = {"k" * 200: _rows(MIN_ROWS)}  # `? key` then `: value`

    text = _written(document)

    assert text == yaml.dump(document, **OPTIONS)
    assert yaml.load(text, Loader=_YAML_LOADER) == document


def test_a_pipeline_with_a_long_inline_dataset_saves_and_loads_back(tmp_path: Any) -> None:
    from potstill.pipeline import Pipeline
    from potstill.steps import LoadDataFromDicts

    rows = [{"instruction": text, "n": i} for i, text in enumerate(TRICKY_TEXTS * 100)]
    with Pipeline(name="inline") as pipeline:
        LoadDataFromDicts(name="load", data=rows)

    path = pipeline.save(tmp_path / "pipeline.yaml", format="yaml")

    assert '- {"instruction": "plain", "n": 0}' in path.read_text(encoding="utf-8")
    assert Pipeline.from_yaml(path).dag.steps["load"].data == rows  # type: ignore[attr-defined]
