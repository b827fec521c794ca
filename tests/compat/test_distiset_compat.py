"""`potstill.distiset` as distilabel 1.1 scripts use it."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import Dataset, DatasetDict

from potstill.distiset import Distiset, create_distiset


def rows(count: int) -> list[dict[str, int]]:
    return [{"n": n} for n in range(count)]


@pytest.mark.parametrize("wrap", [False, True], ids=["Dataset", "DatasetDict"])
def test_train_test_split_on_datasets_and_dataset_dicts(wrap: bool) -> None:
    dataset = Dataset.from_list(rows(10))
    distiset = Distiset(
        {"default": DatasetDict({"train": dataset}) if wrap else dataset},
    )

    split = distiset.train_test_split(train_size=0.8, seed=42)

    assert split is distiset
    assert isinstance(split["default"], DatasetDict)
    assert (split["default"]["train"].num_rows, split["default"]["test"].num_rows) == (8, 2)
    together = list(split["default"]["train"]["n"]) + list(split["default"]["test"]["n"])
    assert sorted(together) == list(range(10))


def test_create_distiset_reads_one_config_per_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "generate_a").mkdir(parents=True)
    (data / "generate_b").mkdir()
    for index in (1, 2):
        pq.write_table(
            pa.Table.from_pylist([{"n": index, "distilabel_metadata": {"raw": "x"}}]),
            data / "generate_a" / f"0000{index}.parquet",
        )
    pq.write_table(pa.Table.from_pylist(rows(3)), data / "generate_b" / "00001.parquet")
    pipeline_yaml = tmp_path / "pipeline.yaml"
    pipeline_yaml.write_text("pipeline: {}\n")

    distiset = create_distiset(data, pipeline_path=pipeline_yaml)

    assert set(distiset) == {"generate_a", "generate_b"}
    assert distiset["generate_a"]["train"].column_names == ["n"], "metadata dropped"
    assert list(distiset["generate_a"]["train"]["n"]) == [1, 2]
    assert list(distiset["generate_b"]["train"]["n"]) == [0, 1, 2]
    assert distiset.pipeline_path == pipeline_yaml
    assert distiset.log_filename_path is None

    kept = create_distiset(data, enable_metadata=True)
    assert "distilabel_metadata" in kept["generate_a"]["train"].column_names

    only = tmp_path / "only"
    (only / "leaf").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows(2)), only / "leaf" / "00001.parquet")
    assert list(create_distiset(only)) == ["default"]


def test_push_to_hub_accepts_distilabels_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    pushed: list[tuple[str, dict]] = []
    monkeypatch.setattr(
        DatasetDict, "push_to_hub", lambda self, repo, **kwargs: pushed.append((repo, kwargs))
    )
    distiset = Distiset({"default": DatasetDict({"train": Dataset.from_list(rows(2))})})

    distiset.push_to_hub("me/data", private=True, token="hf_x", generate_card=False)

    assert pushed == [("me/data", {"config_name": "default", "private": True, "token": "hf_x"})]
