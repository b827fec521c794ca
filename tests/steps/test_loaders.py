"""LoadDataFromFileSystem and LoadDataFromDisk on real files: formats, globs, directories,
fsspec URLs, streaming, num_examples, resume offsets, encodings and the errors for paths that
name nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from datasets import Dataset, DatasetDict

from potstill.distiset import Distiset
from potstill.errors import PipelineValidationError, PotstillUserError
from potstill.pipeline import Pipeline
from potstill.steps import KeepColumns, LoadDataFromDisk, LoadDataFromFileSystem

ROWS = [{"instruction": f"question {i}", "topic": "maths" if i % 2 else "art"} for i in range(5)]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def batches(step: Any, offset: int = 0) -> list[tuple[list[dict[str, Any]], bool]]:
    step.load()
    return list(step.process(offset))


def all_rows(step: Any) -> list[dict[str, Any]]:
    return [row for rows, _ in batches(step) for row in rows]


# -- LoadDataFromFileSystem --------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["jsonl", "json", "parquet", "csv"])
def test_each_format_loads_in_batches(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"data.{suffix}"
    dataset = Dataset.from_list(ROWS)
    if suffix == "jsonl":
        write_jsonl(path, ROWS)
    elif suffix == "json":
        path.write_text(json.dumps(ROWS), encoding="utf-8")
    elif suffix == "parquet":
        dataset.to_parquet(str(path))
    else:
        dataset.to_csv(str(path), index=False)

    step = LoadDataFromFileSystem(data_files=str(path), batch_size=2)

    assert step.get_outputs() == ["instruction", "topic"]
    assert batches(step) == [(ROWS[0:2], False), (ROWS[2:4], False), (ROWS[4:], True)]
    assert step.total_rows() == 5


def test_globs_directories_and_resume_offsets(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "data" / "part-1.jsonl", ROWS[:3])
    write_jsonl(tmp_path / "data" / "part-2.jsonl", ROWS[3:])
    write_jsonl(tmp_path / "data" / ".hidden" / "old.jsonl", [{"instruction": "x", "topic": "y"}])

    glob = LoadDataFromFileSystem(data_files=str(tmp_path / "data" / "part-*.jsonl"), batch_size=2)
    folder = LoadDataFromFileSystem(data_files=tmp_path / "data", batch_size=2)

    assert all_rows(glob) == ROWS
    assert all_rows(folder) == ROWS  # the hidden folder is skipped
    assert batches(glob, offset=3) == [(ROWS[3:], True)]
    assert batches(glob, offset=5) == [([], True)]


def test_streaming_and_num_examples(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "data.jsonl", ROWS)

    streamed = LoadDataFromFileSystem(data_files=str(path), streaming=True, batch_size=2)
    limited = LoadDataFromFileSystem(data_files=str(path), num_examples=3, batch_size=2)
    streamed_limited = LoadDataFromFileSystem(
        data_files=str(path), streaming=True, num_examples=3, batch_size=3
    )

    assert batches(streamed) == [(ROWS[0:2], False), (ROWS[2:4], False), (ROWS[4:], True)]
    assert batches(streamed, offset=4) == [(ROWS[4:], True)]
    assert all_rows(limited) == ROWS[:3] and limited.total_rows() == 3
    assert batches(streamed_limited) == [(ROWS[:3], True)]
    assert streamed.get_outputs() == ["instruction", "topic"]


def test_an_fsspec_url_with_a_glob(tmp_path: Path) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    for index, part in enumerate((ROWS[:2], ROWS[2:])):
        with fs.open(f"/potstill-test/part-{index}.jsonl", "w") as handle:
            handle.write("".join(json.dumps(row) + "\n" for row in part))
    try:
        step = LoadDataFromFileSystem(data_files="memory://potstill-test/*.jsonl")
        assert all_rows(step) == ROWS
    finally:
        fs.rm("/potstill-test", recursive=True)


def test_paths_that_name_nothing_are_named(tmp_path: Path) -> None:
    pattern = str(tmp_path / "nothing-*.jsonl")
    with pytest.raises(PotstillUserError, match="No file matches the pattern") as error:
        LoadDataFromFileSystem(name="load", data_files=pattern).load()
    assert pattern in str(error.value) and "'load'" in str(error.value)

    missing = str(tmp_path / "missing.jsonl")
    with pytest.raises(PotstillUserError, match="does not exist") as error:
        LoadDataFromFileSystem(data_files=missing).load()
    assert missing in str(error.value)

    (tmp_path / "empty").mkdir()
    with pytest.raises(PotstillUserError, match="No file in the directory"):
        LoadDataFromFileSystem(data_files=tmp_path / "empty").load()

    (tmp_path / "data.xyz").write_text("a")
    with pytest.raises(PotstillUserError, match="pass `filetype`"):
        LoadDataFromFileSystem(data_files=tmp_path / "data.xyz").load()


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "data" / "a.jsonl", ROWS[:1])
    latin = tmp_path / "data" / "b.jsonl"
    latin.write_bytes('{"instruction": "café", "topic": "crème"}\n'.encode("latin-1"))
    step = LoadDataFromFileSystem(data_files=str(tmp_path / "data" / "*.jsonl"))

    with pytest.raises(PotstillUserError) as error:
        step.load()

    message = str(error.value)
    assert str(latin) in message and "not utf-8 text" in message and "at byte 20" in message
    assert "encoding='latin-1'" in message
    one_file = LoadDataFromFileSystem(data_files=str(latin), encoding="latin-1")
    assert all_rows(one_file) == [{"instruction": "café", "topic": "crème"}]


def test_the_pipeline_checks_against_the_files_columns(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "data.jsonl", ROWS)
    with Pipeline(name="files", cache_dir=tmp_path / "cache") as p:
        load = LoadDataFromFileSystem(name="load", output_mappings={"topic": "subject"})
        load >> KeepColumns(columns=["instruction", "generation"])

    with pytest.raises(PipelineValidationError, match="missing required runtime parameter"):
        p.run()
    with pytest.raises(PipelineValidationError, match=r"'generation'.*'subject'"):
        p.run(params={"load": {"data_files": str(path)}})


def test_runtime_parameters_and_the_dump(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "data.jsonl", ROWS)
    with Pipeline(name="files", cache_dir=tmp_path / "cache") as p:
        load = LoadDataFromFileSystem(name="load", batch_size=2)
        load >> KeepColumns(columns=["topic"])

    distiset = p.run(
        params={"load": {"data_files": str(path), "storage_options": {"token": "s3cret"}}},
        use_cache=False,
    )

    assert distiset["default"]["train"]["topic"] == [row["topic"] for row in ROWS]
    dumped = json.dumps(p.dump())
    assert "s3cret" not in dumped and "storage_options" not in dumped.split("runtime_parameters")[0]
    names = [info["name"] for info in load.get_runtime_parameters_info()]
    assert names == [
        "resources",
        "batch_size",
        "num_examples",
        "data_files",
        "filetype",
        "encoding",
        "split",
        "streaming",
        "storage_options",
    ]


def test_a_bad_output_mapping_is_named(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "data.jsonl", ROWS)
    step = LoadDataFromFileSystem(data_files=str(path), output_mappings={"prompt": "instruction"})

    with pytest.raises(PotstillUserError, match="`output_mappings` key 'prompt'"):
        step.load()


# -- LoadDataFromDisk --------------------------------------------------------------------------


def test_load_from_disk_a_dataset_and_a_dataset_dict(tmp_path: Path) -> None:
    Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "dataset"))
    both = DatasetDict({"train": Dataset.from_list(ROWS), "test": Dataset.from_list(ROWS[:2])})
    both.save_to_disk(str(tmp_path / "dict"))

    assert all_rows(LoadDataFromDisk(dataset_path=tmp_path / "dataset")) == ROWS
    assert all_rows(LoadDataFromDisk(dataset_path=tmp_path / "dict", split="test")) == ROWS[:2]
    limited = LoadDataFromDisk(dataset_path=tmp_path / "dataset", num_examples=2, batch_size=1)
    assert batches(limited) == [([ROWS[0]], False), ([ROWS[1]], True)]
    with pytest.raises(PotstillUserError, match=r"has the splits \['test', 'train'\]"):
        LoadDataFromDisk(dataset_path=tmp_path / "dict").load()
    with pytest.raises(PotstillUserError, match="could not load the dataset saved at"):
        LoadDataFromDisk(dataset_path=tmp_path / "nowhere").load()


def test_load_from_disk_a_distiset(tmp_path: Path) -> None:
    distiset = Distiset(
        {
            "leaf_a": DatasetDict({"train": Dataset.from_list(ROWS)}),
            "leaf_b": DatasetDict({"train": Dataset.from_list(ROWS[:1])}),
        }
    )
    distiset.save_to_disk(tmp_path / "distiset")

    step = LoadDataFromDisk(dataset_path=tmp_path / "distiset", is_distiset=True, config="leaf_b")

    assert all_rows(step) == ROWS[:1]
    with pytest.raises(
        PotstillUserError, match=r"no configuration 'default'.*\['leaf_a', 'leaf_b'\]"
    ):
        LoadDataFromDisk(dataset_path=tmp_path / "distiset", is_distiset=True).load()
