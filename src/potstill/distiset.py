"""`Distiset`: what `Pipeline.run` returns.

A dict of leaf step name -> `datasets.DatasetDict({"train": ...})`; with a single leaf step
the key is `"default"`.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from potstill.errors import BatchWriteError
from potstill.pipeline.failures import FailedRows
from potstill.pipeline.step_batches import StepBatches
from potstill.steps.tasks.base import METADATA_COLUMN
from potstill.utils.card import card_text, size_category
from potstill.utils.datasets_progress import quiet_datasets_progress

_PIPELINE_FILE = "pipeline.yaml"


class Distiset(dict):
    """The datasets a pipeline produced, one `DatasetDict` per leaf step.

    Attributes:
        pipeline_path: the `pipeline.yaml` describing the run, when there is one.
        log_filename_path: the run's log file, when there is one (potstill logs through
            `logging`, so pipelines do not write one; `create_distiset` can record one).
        failed_rows: the rows the run failed on, per step and in total (`None` for a
            Distiset that no run returned, e.g. one loaded from disk).
    """

    def __init__(
        self,
        *args: Any,
        pipeline_path: Optional[Path] = None,
        log_filename_path: Optional[Path] = None,
        failed_rows: Optional[FailedRows] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.pipeline_path = pipeline_path
        self.log_filename_path = log_filename_path
        self.failed_rows = failed_rows

    @classmethod
    def from_stores(
        cls,
        stores: dict[str, StepBatches],
        enable_metadata: bool = True,
        pipeline_path: Optional[Path] = None,
    ) -> Distiset:
        """Builds the datasets from the stored batches of the leaf steps.

        Args:
            stores: leaf step name -> its stored batches.
            enable_metadata: keep the `potstill_metadata` column.
            pipeline_path: the run's `pipeline.yaml`.

        Returns:
            The Distiset.
        """
        tables = {name: stored_table(stored) for name, stored in stores.items()}
        fingerprints = {name: stored.content_id() for name, stored in stores.items()}
        return cls.from_tables(tables, enable_metadata, pipeline_path, fingerprints=fingerprints)

    @classmethod
    def from_tables(
        cls,
        tables: dict[str, Any],
        enable_metadata: bool = True,
        pipeline_path: Optional[Path] = None,
        failed_rows: Optional[FailedRows] = None,
        fingerprints: Optional[dict[str, str]] = None,
    ) -> Distiset:
        """Builds the datasets from the leaf steps' output tables.

        Args:
            tables: leaf step name -> its output as a `pyarrow.Table`.
            enable_metadata: keep the `potstill_metadata` column.
            pipeline_path: the run's `pipeline.yaml`.
            failed_rows: the run's failed rows.
            fingerprints: leaf step name -> an id of its table's content (e.g.
                `StepBatches.content_id`), which saves `datasets` hashing the whole table
                to fingerprint the dataset; without one, `datasets` hashes it.

        Returns:
            The Distiset.
        """
        from datasets import Dataset, DatasetDict

        distiset = cls(pipeline_path=pipeline_path, failed_rows=failed_rows)
        for name, table in tables.items():
            if not enable_metadata and METADATA_COLUMN in table.column_names:
                table = table.drop_columns([METADATA_COLUMN])
            key = "default" if len(tables) == 1 else name
            content = (fingerprints or {}).get(name)
            fingerprint = _fingerprint(content, table) if content is not None else None
            distiset[key] = DatasetDict({"train": Dataset(table, fingerprint=fingerprint)})
        return distiset

    def save_to_disk(
        self, distiset_path: Union[str, Path], save_pipeline_config: bool = True, **kwargs: Any
    ) -> Path:
        """Saves every dataset (and the pipeline config) under a directory, without
        `datasets`' progress bars.

        Args:
            distiset_path: the directory to write; each config goes in a sub-directory.
            save_pipeline_config: also copy `pipeline.yaml` there.
            **kwargs: passed to `DatasetDict.save_to_disk`.

        Returns:
            The directory.
        """
        root = Path(distiset_path)
        root.mkdir(parents=True, exist_ok=True)
        with quiet_datasets_progress():
            for name, dataset_dict in self.items():
                dataset_dict.save_to_disk(str(root / name), **kwargs)
        if save_pipeline_config and self.pipeline_path and Path(self.pipeline_path).exists():
            shutil.copyfile(self.pipeline_path, root / _PIPELINE_FILE)
        return root

    @classmethod
    def load_from_disk(cls, distiset_path: Union[str, Path], **kwargs: Any) -> Distiset:
        """Loads a Distiset written by `save_to_disk`.

        Args:
            distiset_path: the directory `save_to_disk` wrote.
            **kwargs: passed to `datasets.load_from_disk`.

        Returns:
            The Distiset.
        """
        from datasets import load_from_disk

        root = Path(distiset_path)
        if not root.is_dir():
            raise FileNotFoundError(f"No saved Distiset at {str(root)!r}.")
        pipeline_path = root / _PIPELINE_FILE
        distiset = cls(pipeline_path=pipeline_path if pipeline_path.exists() else None)
        for entry in sorted(root.iterdir()):
            if entry.is_dir():
                distiset[entry.name] = load_from_disk(str(entry), **kwargs)
        return distiset

    def train_test_split(
        self, train_size: float, shuffle: bool = True, seed: Optional[int] = None
    ) -> Distiset:
        """Splits every `train` split (or every plain `Dataset` value) into `train` and
        `test`.

        Args:
            train_size: the share of rows that stay in `train`.
            shuffle: shuffle before splitting.
            seed: the shuffle's seed.

        Returns:
            The Distiset itself, modified.
        """
        from datasets import Dataset

        for name, value in self.items():
            dataset = value if isinstance(value, Dataset) else value["train"]
            self[name] = dataset.train_test_split(train_size=train_size, shuffle=shuffle, seed=seed)
        return self

    def push_to_hub(
        self,
        repo_id: str,
        private: bool = False,
        token: Optional[str] = None,
        generate_card: bool = True,
        **kwargs: Any,
    ) -> None:
        """Pushes each dataset to the Hugging Face Hub as a config of `repo_id`, then a
        dataset card and the run's `pipeline.yaml` beside the data.

        The card (`README.md`) keeps the metadata `datasets` wrote (configs, features, sizes)
        and says what the pipeline does, how to run it again from its `pipeline.yaml` with
        `potstill pipeline run --config <url>`, and what a row of each config looks like.

        Args:
            repo_id: the dataset repository (created when missing).
            private: create it private (an existing repository keeps its visibility).
            token: the Hub token (defaults to the one `huggingface_hub` finds, e.g. `HF_TOKEN`).
            generate_card: also write the dataset card and `pipeline.yaml`.
            **kwargs: passed to `DatasetDict.push_to_hub`.
        """
        for name, dataset_dict in self.items():
            dataset_dict.push_to_hub(
                repo_id, config_name=name, private=private, token=token, **kwargs
            )
        if generate_card:
            self._push_card(repo_id, token)

    def _push_card(self, repo_id: str, token: Optional[str]) -> None:
        """Commits the dataset card and `pipeline.yaml` in one commit."""
        from huggingface_hub import CommitOperationAdd, DatasetCard, DatasetCardData, HfApi
        from huggingface_hub import constants as hub_constants

        card = DatasetCard.load(repo_id, repo_type="dataset", token=token)
        metadata = card.data.to_dict()
        rows = max((len(split) for d in self.values() for split in d.values()), default=0)
        metadata["size_categories"] = size_category(rows)
        metadata["tags"] = sorted({*(metadata.get("tags") or []), "synthetic", "potstill"})
        pipeline = None
        operations = []
        if self.pipeline_path is not None and Path(self.pipeline_path).exists():
            config = Path(self.pipeline_path).read_bytes()
            pipeline = yaml.safe_load(config)
            operations.append(
                CommitOperationAdd(path_in_repo=_PIPELINE_FILE, path_or_fileobj=config)
            )
        card.data = DatasetCardData(**metadata)
        card.text = card_text(repo_id, hub_constants.ENDPOINT, pipeline, self._examples())
        operations.append(
            CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(card).encode())
        )
        HfApi(token=token).create_commit(
            repo_id,
            operations=operations,
            commit_message="Add the dataset card and pipeline.yaml",
            repo_type="dataset",
        )

    def _examples(self) -> dict[str, dict[str, Any]]:
        """Config name -> its first row (from `train`, or the first split)."""
        examples = {}
        for name, dataset_dict in self.items():
            split = (
                dataset_dict["train"]
                if "train" in dataset_dict
                else next(iter(dataset_dict.values()), None)
            )
            if split is not None and len(split):
                examples[name] = split[0]
        return examples

    @property
    def configs(self) -> Iterable[str]:
        """The config names (leaf steps, or `"default"`)."""
        return self.keys()

    def __repr__(self) -> str:
        inner = ",\n".join(f"  {name}: {value!r}" for name, value in self.items())
        return f"Distiset({{\n{inner}\n}})"


def create_distiset(
    data_dir: Union[str, Path],
    pipeline_path: Optional[Union[str, Path]] = None,
    log_filename_path: Optional[Union[str, Path]] = None,
    enable_metadata: bool = False,
) -> Distiset:
    """Builds a `Distiset` from a folder of data files, one sub-folder per config.

    Each sub-folder of `data_dir` holding `.parquet`, `.arrow` (Arrow IPC file) or `.jsonl`
    files becomes a config (its name) with a `train` split; with a single sub-folder the
    config is `"default"`. This is how distilabel turned its cache's `data/` folder into the result of
    a run; a potstill run returns its `Distiset` directly.

    Args:
        data_dir: the folder with one sub-folder of data files per config.
        pipeline_path: the pipeline's config file, kept as `pipeline_path`.
        log_filename_path: the run's log file, kept as `log_filename_path`.
        enable_metadata: keep the `potstill_metadata` (or `distilabel_metadata`) column.

    Returns:
        The Distiset (empty when `data_dir` holds no data).
    """
    import pyarrow as pa
    from datasets import Dataset, DatasetDict

    root = Path(data_dir)
    folders: dict[str, list[Path]] = {}
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        files = sorted(f for f in folder.rglob("*") if f.suffix in _DATA_READERS)
        if folder.is_dir() and files:
            folders[folder.name] = files
    distiset = Distiset(
        pipeline_path=Path(pipeline_path) if pipeline_path else None,
        log_filename_path=Path(log_filename_path) if log_filename_path else None,
    )
    for name, files in folders.items():
        tables = [_DATA_READERS[f.suffix](f) for f in files]
        table = pa.concat_tables(tables, promote_options="permissive")
        if not enable_metadata:
            table = table.drop_columns(
                [c for c in (METADATA_COLUMN, "distilabel_metadata") if c in table.column_names]
            )
        distiset["default" if len(folders) == 1 else name] = DatasetDict({"train": Dataset(table)})
    return distiset


def _read_parquet(path: Path) -> Any:
    import pyarrow.parquet as pq

    return pq.read_table(path)


def _read_arrow(path: Path) -> Any:
    import pyarrow.feather as feather

    return feather.read_table(path, memory_map=False)


def _read_json(path: Path) -> Any:
    import pyarrow.json as pj

    return pj.read_json(path)


_DATA_READERS = {".parquet": _read_parquet, ".arrow": _read_arrow, ".jsonl": _read_json}


def _fingerprint(content: str, table: Any) -> str:
    """A `datasets` fingerprint (16 hex characters) for a table with content id `content`
    and these columns."""
    text = f"{content}:{','.join(table.column_names)}"
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def stored_table(stored: StepBatches) -> Any:
    """Every batch a step stored, as one `pyarrow.Table` (columns unified across batches)."""
    import pyarrow as pa

    tables = [t for t in stored.read_all_tables() if t.num_columns]
    try:
        return pa.concat_tables(tables, promote_options="permissive") if tables else pa.table({})
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise BatchWriteError(
            f"The batches of step {stored.path.name!r} cannot be merged into one dataset: "
            f"{error}. A column must hold one type in every batch: fix the step (or its input "
            "data) so it does, then run the pipeline again."
        ) from None
