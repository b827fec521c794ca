"""Distiset: shape, save_to_disk / load_from_disk, train_test_split."""

from __future__ import annotations

from pathlib import Path

import pytest
from datasets import DatasetDict
from tests.core.fakes import EchoLLM, RecordingStep

from potstill.distiset import Distiset
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration


def _run_two_leaves() -> tuple[Pipeline, Distiset]:
    with Pipeline(name="distiset") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": f"q{i}"} for i in range(10)], batch_size=3)
        load >> [TextGeneration(name="generate", llm=EchoLLM()), RecordingStep(name="copy")]
    return pipeline, pipeline.run()


def test_distiset_is_a_dict_of_dataset_dicts() -> None:
    pipeline, distiset = _run_two_leaves()

    assert isinstance(distiset, dict)
    assert sorted(distiset.configs) == ["copy", "generate"]
    for name in ("copy", "generate"):
        assert isinstance(distiset[name], DatasetDict)
        assert list(distiset[name]) == ["train"]
        assert distiset[name]["train"].num_rows == 10
    assert distiset.pipeline_path == pipeline.cache_dir / "pipeline.yaml"
    assert "generate" in repr(distiset) and "num_rows: 10" in repr(distiset)


def test_save_to_disk_and_load_from_disk_round_trip(tmp_path: Path) -> None:
    _, distiset = _run_two_leaves()

    root = distiset.save_to_disk(tmp_path / "saved")
    loaded = Distiset.load_from_disk(root)

    assert root == tmp_path / "saved"
    assert sorted(p.name for p in root.iterdir()) == ["copy", "generate", "pipeline.yaml"]
    assert sorted(loaded) == ["copy", "generate"]
    for name in ("copy", "generate"):
        assert loaded[name]["train"].to_list() == distiset[name]["train"].to_list()
    assert loaded.pipeline_path == root / "pipeline.yaml"
    assert Pipeline.from_yaml(loaded.pipeline_path).name == "distiset"


def test_save_without_pipeline_config(tmp_path: Path) -> None:
    _, distiset = _run_two_leaves()

    root = distiset.save_to_disk(tmp_path / "bare", save_pipeline_config=False)

    assert not (root / "pipeline.yaml").exists()
    assert Distiset.load_from_disk(root).pipeline_path is None


def test_single_leaf_round_trip_keeps_default(tmp_path: Path) -> None:
    with Pipeline(name="one-leaf") as pipeline:
        LoadDataFromDicts(data=[{"instruction": "a"}]) >> TextGeneration(llm=EchoLLM())
    distiset = pipeline.run()

    loaded = Distiset.load_from_disk(distiset.save_to_disk(tmp_path / "one"))

    assert list(loaded) == ["default"]
    assert loaded["default"]["train"]["generation"] == ["a #0"]


def test_load_from_a_missing_path_fails(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        Distiset.load_from_disk(tmp_path / "nothing-here")


def test_train_test_split() -> None:
    _, distiset = _run_two_leaves()

    split = distiset.train_test_split(train_size=0.8, seed=0)

    assert split is distiset
    for name in ("copy", "generate"):
        assert sorted(split[name]) == ["test", "train"]
        assert (split[name]["train"].num_rows, split[name]["test"].num_rows) == (8, 2)


def test_a_runs_datasets_are_fingerprinted_from_the_stored_batches_not_by_hashing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import datasets.arrow_dataset

    def hashing_the_table(dataset: object) -> str:
        raise AssertionError("datasets hashed the whole table to fingerprint it")

    monkeypatch.setattr(datasets.arrow_dataset, "generate_fingerprint", hashing_the_table)
    first = _run_two_leaves()[1]
    again = _run_two_leaves()[1]  # the same stored batches
    with Pipeline(name="distiset") as pipeline:  # other rows
        LoadDataFromDicts(data=[{"instruction": "other"}]) >> RecordingStep(name="copy")
    other = pipeline.run()

    prints = {name: first[name]["train"]._fingerprint for name in first}
    assert prints == {name: again[name]["train"]._fingerprint for name in again}
    assert prints["copy"] != prints["generate"]
    assert other["default"]["train"]._fingerprint != prints["copy"]
