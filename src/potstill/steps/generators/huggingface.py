"""Generator steps that read datasets with Hugging Face `datasets`: from the Hub
(`LoadDataFromHub`, and `LoadHubDataset`, its distilabel 1.1 name), from files
(`LoadDataFromFileSystem`) and from a dataset saved to disk (`LoadDataFromDisk`).

How a loader opens its dataset and yields batches is in `dataset_loader.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

from pydantic import Field, PrivateAttr

from potstill.errors import PotstillUserError
from potstill.mixins.runtime_parameters import RuntimeParameter
from potstill.steps.generators.dataset_loader import DatasetLoader
from potstill.steps.generators.files import (
    filetype_of,
    find_data_files,
    first_undecodable,
    is_text_filetype,
)

# The fields that several loaders declare alike (each declares them itself, so that its
# fields keep their order in dumps and runtime parameter lists).


def _split_field() -> Any:
    return Field(
        default="train", description="The split of the dataset to load. Defaults to 'train'."
    )


def _streaming_field() -> Any:
    return Field(
        default=False,
        description="Whether to load the dataset in streaming mode or not. Defaults to False.",
    )


def _storage_options_field() -> Any:
    # Given at run time, never saved: fsspec options may hold credentials.
    return Field(
        default=None,
        exclude=True,
        description="Key/value pairs to be passed on to the file-system backend, if any.",
    )


class LoadDataFromHub(DatasetLoader):
    """Loads a dataset from the Hugging Face Hub with `datasets.load_dataset`.

    The Hub is reached with `huggingface_hub`'s settings: `HF_TOKEN` (or the token
    `huggingface-cli login` saved) for private datasets, `HF_ENDPOINT` for another endpoint.

    Output columns: the dataset's.

    Attributes:
        repo_id: the dataset's repository, e.g. `"HuggingFaceH4/instruction-dataset"`.
        split: the split to read.
        config: the configuration (subset), when the dataset has several.
        revision: a branch, tag or commit; the latest when not given.
        streaming: read the rows as they download instead of downloading the split first.
        num_examples: how many rows to read, from the start; all when not given.
        storage_options: options for the fsspec file system (given at run time, never saved
            in `pipeline.yaml`: they may hold credentials).
    """

    repo_id: RuntimeParameter[str] = Field(
        default=None, description="The Hugging Face Hub repository ID of the dataset to load."
    )
    split: RuntimeParameter[str] = _split_field()
    config: Optional[RuntimeParameter[str]] = Field(
        default=None,
        description="The configuration of the dataset to load. This is optional and only "
        "needed if the dataset has multiple configurations.",
    )
    revision: Optional[RuntimeParameter[str]] = Field(
        default=None,
        description="The revision of the dataset to load. Defaults to the latest revision.",
    )
    streaming: RuntimeParameter[bool] = _streaming_field()
    storage_options: Optional[RuntimeParameter[dict[str, Any]]] = _storage_options_field()

    def _source_given(self) -> bool:
        return bool(self.repo_id)

    def _source_fields(self) -> list[str]:
        return ["repo_id"]

    def _open(self, streaming: bool) -> Any:
        from datasets import load_dataset

        try:
            return load_dataset(
                self.repo_id,  # type: ignore[arg-type]
                self.config,
                split=self.split,
                revision=self.revision,
                streaming=streaming,
                storage_options=self.storage_options,
            )
        except Exception as error:
            where = f"config {self.config!r}, " if self.config else ""
            raise self._failed(
                f"the Hub dataset {self.repo_id!r} ({where}split {self.split!r})", error
            ) from error


class LoadHubDataset(LoadDataFromHub):
    """distilabel 1.1's name for `LoadDataFromHub`.

    Attributes:
        repo_id: the dataset's repository.
        split: the split to read.
        config: the configuration (subset), when the dataset has several.
        revision: a branch, tag or commit; the latest when not given.
        streaming: read the rows as they download.
        num_examples: how many rows to read, from the start; all when not given.
        storage_options: options for the fsspec file system (never saved).
    """


class LoadDataFromFileSystem(DatasetLoader):
    """Loads JSON, JSON Lines, Parquet, CSV or text files, local or remote (any fsspec URL:
    `s3://`, `gcs://`, `hf://`...), with `datasets.load_dataset`.

    `data_files` is a file, a directory (every file under it, hidden ones aside) or a glob
    pattern (`data/*.jsonl`, `s3://bucket/part-*.parquet`). The format comes from the first
    file's suffix unless `filetype` is given.

    Output columns: the files' columns.

    Attributes:
        data_files: the file, directory or glob pattern to read.
        filetype: `json`, `parquet`, `csv` or `text`; from the suffix when not given.
        encoding: the text encoding of JSON and CSV files (UTF-8 when not given).
        split: the split name the rows get.
        streaming: read the rows as they are read from the files.
        num_examples: how many rows to read, from the start; all when not given.
        storage_options: options for the fsspec file system (given at run time, never saved
            in `pipeline.yaml`: they may hold credentials).
    """

    data_files: RuntimeParameter[Union[str, Path]] = Field(
        default=None,
        description="The data files, or directory containing the data files, to generate the "
        "dataset from.",
    )
    filetype: Optional[RuntimeParameter[str]] = Field(
        default=None,
        description="The expected filetype. If not provided, it will be inferred from the file "
        "extension.",
    )
    encoding: Optional[RuntimeParameter[str]] = Field(
        default=None,
        description="The text encoding of JSON and CSV files. Defaults to UTF-8.",
    )
    split: RuntimeParameter[str] = _split_field()
    streaming: RuntimeParameter[bool] = _streaming_field()
    storage_options: Optional[RuntimeParameter[dict[str, Any]]] = _storage_options_field()

    _files: list[str] = PrivateAttr(default_factory=list)

    def _source_given(self) -> bool:
        return self.data_files is not None and str(self.data_files) != ""

    def _source_fields(self) -> list[str]:
        return ["data_files"]

    def _open(self, streaming: bool) -> Any:
        from datasets import load_dataset

        location = str(self.data_files)
        try:
            files = find_data_files(location, self.storage_options)
        except PotstillUserError as error:
            raise PotstillUserError(f"Step {self.name!r}: {error}") from None
        filetype = filetype_of(files, self.filetype)
        self._files = files
        text = is_text_filetype(filetype)
        options: dict[str, Any] = {"encoding": self.encoding} if self.encoding and text else {}
        try:
            dataset = load_dataset(
                filetype,
                data_files={self.split: files},
                split=self.split,
                streaming=streaming,
                storage_options=self.storage_options,
                **options,
            )
        except Exception as error:
            if _caused_by(error, UnicodeDecodeError) and text:
                raise self._undecodable(None) from None
            raise self._failed(f"{location!r} as {filetype}", error) from error
        if text and not streaming and not _valid_utf8(dataset):
            # pyarrow's JSON reader keeps undecodable bytes; they would fail on first access.
            raise self._undecodable(None)
        return dataset

    def _undecodable(self, error: Optional[UnicodeDecodeError]) -> PotstillUserError:
        encoding = self.encoding or "utf-8"
        found = first_undecodable(self._files, encoding, self.storage_options)
        where = (
            f"{found[0]!r} is not {encoding} text ({found[2]} at byte {found[1]})"
            if found
            else f"the files of {str(self.data_files)!r} are not {encoding} text"
        )
        return PotstillUserError(
            f"Step {self.name!r}: {where}. Convert the file to UTF-8 (e.g. `iconv -f latin1 -t "
            "utf-8`), or give its encoding with `encoding='latin-1'` (or the one it uses)."
        )


class LoadDataFromDisk(DatasetLoader):
    """Loads a dataset saved with `Dataset.save_to_disk`/`DatasetDict.save_to_disk`, or a
    `Distiset` saved with `Distiset.save_to_disk` (`is_distiset=True`).

    Output columns: the dataset's.

    Attributes:
        dataset_path: the directory the dataset was saved to.
        config: the Distiset configuration to read (a leaf step's name, or `default`).
        is_distiset: whether `dataset_path` holds a Distiset.
        keep_in_memory: copy the dataset into memory instead of memory-mapping it.
        split: the split to read; may be left out when there is only one.
        num_examples: how many rows to read, from the start; all when not given.
        storage_options: options for the fsspec file system (never saved).
    """

    dataset_path: RuntimeParameter[Union[str, Path]] = Field(
        default=None, description="Path to the dataset or distiset."
    )
    config: Optional[RuntimeParameter[str]] = Field(
        default="default",
        description="The configuration of the dataset to load. Will default to 'default' which "
        "corresponds to a distiset with a single configuration.",
    )
    is_distiset: Optional[RuntimeParameter[bool]] = Field(
        default=False,
        description="Whether the dataset to load is a `Distiset` or not. Defaults to False.",
    )
    keep_in_memory: Optional[RuntimeParameter[bool]] = Field(
        default=None,
        description="Whether to copy the dataset in-memory, see `datasets.Dataset.load_from_disk` "
        "for more information. Defaults to `None`.",
    )
    split: Optional[RuntimeParameter[str]] = Field(
        default=None,
        description="The split of the dataset to load. By default will load the whole "
        "Dataset/Distiset.",
    )
    storage_options: Optional[RuntimeParameter[dict[str, Any]]] = _storage_options_field()

    def _source_given(self) -> bool:
        return self.dataset_path is not None and str(self.dataset_path) != ""

    def _source_fields(self) -> list[str]:
        return ["dataset_path"]

    def _open(self, streaming: bool) -> Any:
        from datasets import DatasetDict, load_from_disk

        from potstill.distiset import Distiset

        path = str(self.dataset_path)
        options = {"keep_in_memory": self.keep_in_memory, "storage_options": self.storage_options}
        try:
            if self.is_distiset:
                distiset = Distiset.load_from_disk(path, **options)
                if self.config not in distiset:
                    raise PotstillUserError(
                        f"Step {self.name!r}: the Distiset at {path!r} has no configuration "
                        f"{self.config!r}; it has {sorted(distiset)}. Set `config` to one of them."
                    )
                dataset = distiset[self.config]
            else:
                dataset = load_from_disk(path, **options)
        except PotstillUserError:
            raise
        except Exception as error:
            raise self._failed(f"the dataset saved at {path!r}", error) from error
        if not isinstance(dataset, DatasetDict):
            return dataset
        splits = sorted(dataset)
        if self.split is None and len(splits) == 1:
            return dataset[splits[0]]
        if self.split not in dataset:
            raise PotstillUserError(
                f"Step {self.name!r}: the dataset at {path!r} has the splits {splits}; set "
                f"`split` to one of them (got {self.split!r})."
            )
        return dataset[self.split]


def _caused_by(error: BaseException, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    current: Optional[BaseException] = error
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _valid_utf8(dataset: Any) -> bool:
    import pyarrow as pa

    try:
        dataset.data.table.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True
