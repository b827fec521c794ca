"""Column steps: KeepColumns, CombineColumns/GroupColumns, MergeColumns, ExpandColumns and
ConversationTemplate, standalone and through the engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from potstill.errors import PipelineValidationError, PotstillUserError
from potstill.pipeline import Pipeline
from potstill.steps import (
    CombineColumns,
    ConversationTemplate,
    ExpandColumns,
    GroupColumns,
    KeepColumns,
    LoadDataFromDicts,
    MergeColumns,
)
from potstill.steps.tasks.base import METADATA_COLUMN


def first(step: Any, *batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    step.load()
    return next(step.process(*batches))


def pipeline(tmp_path: Path) -> Pipeline:
    return Pipeline(name="columns", cache_dir=tmp_path / "cache")


# -- KeepColumns -----------------------------------------------------------------------------


def test_keep_columns_keeps_the_given_columns_in_the_given_order() -> None:
    rows = [{"model_name": "m", "generation": "white", "instruction": "Brightest colour?"}]

    kept = first(KeepColumns(columns=["instruction", "generation"]), rows)

    assert kept == [{"instruction": "Brightest colour?", "generation": "white"}]
    assert list(kept[0]) == ["instruction", "generation"]
    assert rows[0]["model_name"] == "m"  # the input row is left as it was


def test_keep_columns_names_the_row_and_the_missing_column() -> None:
    step = KeepColumns(name="keep", columns=["instruction", "generation"])

    with pytest.raises(PotstillUserError) as error:
        first(step, [{"instruction": "a", "generation": "b"}, {"instruction": "c"}])

    message = str(error.value)
    assert "'keep'" in message and "row 1" in message and "'generation'" in message
    assert "['instruction']" in message  # what the row has


def test_keep_columns_on_an_empty_batch_and_on_several_inputs() -> None:
    step = KeepColumns(columns=["a"])
    step.load()

    assert list(step.process([])) == [[]]
    assert list(step.process([{"a": 1, "b": 2}], [{"a": 3}])) == [[{"a": 1}], [{"a": 3}]]


def test_a_pipeline_refuses_to_keep_a_column_nobody_produces(tmp_path: Path) -> None:
    with pipeline(tmp_path) as p:
        LoadDataFromDicts(data=[{"instruction": "a"}]) >> KeepColumns(columns=["generation"])

    with pytest.raises(PipelineValidationError, match="'generation'"):
        p.run()


# -- CombineColumns / GroupColumns -------------------------------------------------------------


def test_combine_columns_gathers_each_column_across_inputs() -> None:
    combined = first(
        CombineColumns(columns=["generation", "model_name"]),
        [{"instruction": "q", "generation": "AI text"}, {"instruction": "r", "generation": "x"}],
        [{"instruction": "q", "generation": "Other text", "model_name": "m2"}, {"generation": "y"}],
    )

    assert combined[0] == {
        "instruction": "q",
        "merged_generation": ["AI text", "Other text"],
        "merged_model_name": ["m2"],
    }
    assert combined[1]["merged_generation"] == ["x", "y"]
    assert combined[1]["merged_model_name"] == []  # no input had it: still a list


def test_group_columns_prefix_and_output_columns() -> None:
    inputs = ([{"generation": "a"}], [{"generation": "b"}])

    assert first(GroupColumns(columns=["generation"]), *inputs) == [
        {"grouped_generation": ["a", "b"]}
    ]
    named = GroupColumns(columns=["generation"], output_columns=["generations"])
    assert first(named, *inputs) == [{"generations": ["a", "b"]}]
    assert named.get_outputs() == ["generations"]


def test_combine_columns_checks_its_columns_and_its_inputs() -> None:
    with pytest.raises(ValueError, match="one column for each of `columns`"):  # at construction
        CombineColumns(columns=["a", "b"], output_columns=["x"])
    with pytest.raises(PotstillUserError, match=r"\[2, 1\] rows"):
        first(CombineColumns(columns=["a"]), [{"a": 1}, {"a": 2}], [{"a": 3}])


def test_combine_columns_keeps_every_inputs_metadata() -> None:
    combined = first(
        CombineColumns(columns=["generation"]),
        [{"generation": "a", METADATA_COLUMN: {"raw_output_one": "a"}}],
        [{"generation": "b", METADATA_COLUMN: {"raw_output_two": "b"}}],
    )

    assert combined[0][METADATA_COLUMN] == {"raw_output_one": "a", "raw_output_two": "b"}


def test_group_columns_joins_branches_in_a_pipeline(tmp_path: Path) -> None:
    data = [{"instruction": f"q{i}", "generation": f"g{i}"} for i in range(5)]
    with pipeline(tmp_path) as p:
        one = LoadDataFromDicts(name="one", data=data, batch_size=2)
        two = LoadDataFromDicts(name="two", data=data, batch_size=3)
        group = GroupColumns(
            columns=["generation"], output_columns=["generations"], input_batch_size=2
        )
        keep = KeepColumns(columns=["instruction", "generations"])
        [one, two] >> group >> keep

    rows = p.run(use_cache=False)["default"]["train"].to_list()

    assert rows == [{"instruction": f"q{i}", "generations": [f"g{i}", f"g{i}"]} for i in range(5)]


# -- MergeColumns ------------------------------------------------------------------------------


def test_merge_columns_flattens_the_columns_into_one_list() -> None:
    rows = [{"queries": "How are you?", "multiple_queries": ["What's up?", "Ok?"], "id": 1}]

    assert first(MergeColumns(columns=["queries", "multiple_queries"]), rows) == [
        {"id": 1, "merged_column": ["How are you?", "What's up?", "Ok?"]}
    ]
    named = MergeColumns(columns=["queries", "multiple_queries"], output_column="queries")
    assert first(named, rows)[0]["queries"] == ["How are you?", "What's up?", "Ok?"]


def test_merge_columns_names_a_missing_column() -> None:
    with pytest.raises(PotstillUserError, match="'multiple_queries'"):
        first(MergeColumns(columns=["queries", "multiple_queries"]), [{"queries": "q"}])


# -- ExpandColumns -----------------------------------------------------------------------------


def test_expand_columns_gives_each_element_a_row() -> None:
    rows = [{"instruction": "i", "generation": ["g1", "g2"], "model": ["m1", "m2"]}]

    assert first(ExpandColumns(columns=["generation"]), rows) == [
        {"instruction": "i", "generation": "g1", "model": ["m1", "m2"]},
        {"instruction": "i", "generation": "g2", "model": ["m1", "m2"]},
    ]
    renamed = ExpandColumns(columns={"generation": "response", "model": "model_name"})
    assert renamed.get_outputs() == ["response", "model_name"]
    assert first(renamed, rows) == [
        {"instruction": "i", "response": "g1", "model_name": "m1"},
        {"instruction": "i", "response": "g2", "model_name": "m2"},
    ]


def test_expand_columns_edge_rows() -> None:
    step = ExpandColumns(columns=["generation"])
    rows = [
        {"id": 0, "generation": []},
        {"id": 1, "generation": None},
        {"id": 2, "generation": ["x"]},
    ]

    assert first(step, rows) == [{"id": 1, "generation": None}, {"id": 2, "generation": "x"}]
    assert first(step, []) == []


def test_expand_columns_rejects_what_it_cannot_expand() -> None:
    with pytest.raises(PotstillUserError, match="'generation' of row 0 must hold a list, got str"):
        first(ExpandColumns(columns=["generation"]), [{"generation": "abc"}])
    with pytest.raises(PotstillUserError, match="different lengths"):
        first(ExpandColumns(columns=["a", "b"]), [{"a": [1, 2], "b": [1]}])
    with pytest.raises(PotstillUserError, match="row 0 has no column 'generation'"):
        first(ExpandColumns(columns=["generation"]), [{"instruction": "i"}])


def test_expand_columns_multiplies_rows_in_a_pipeline(tmp_path: Path) -> None:
    data = [{"instruction": f"q{i}", "generations": [f"a{i}", f"b{i}", f"c{i}"]} for i in range(4)]
    with pipeline(tmp_path) as p:
        load = LoadDataFromDicts(data=data, batch_size=3)
        expand = ExpandColumns(columns={"generations": "generation"}, input_batch_size=2)
        load >> expand

    rows = p.run(use_cache=False)["default"]["train"].to_list()

    assert [row["generation"] for row in rows] == [f"{x}{i}" for i in range(4) for x in "abc"]


# -- ConversationTemplate ----------------------------------------------------------------------


def test_conversation_template() -> None:
    rows = [{"instruction": "Hello?", "response": "Hi!"}]

    assert first(ConversationTemplate(), rows)[0]["conversation"] == [
        {"role": "user", "content": "Hello?"},
        {"role": "assistant", "content": "Hi!"},
    ]
    with pytest.raises(PotstillUserError, match="'response'"):
        first(ConversationTemplate(), [{"instruction": "Hello?"}])
