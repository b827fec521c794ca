"""`Distiset`: what `Pipeline.run` returns.

A dict of leaf step name -> `datasets.DatasetDict({"train": ...})`; with a single leaf step
the key is `"default"`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Optional, Union

from potstill.errors import BatchWriteError
from potstill.pipeline.store import StepStore
from potstill.steps.tasks.base import METADATA_COLUMN

_PIPELINE_FILE = "pipeline.yaml"


class Distiset(dict):
    """The datasets a pipeline produced, one `DatasetDict` per leaf step.

    Attributes:
        pipeline_path: the `pipeline.yaml` describing the run, when there is one.
    """

    def __init__(self, *args: Any, pipeline_path: Optional[Path] = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pipeline_path = pipeline_path

    @classmethod
    def from_stores(
        cls,
        stores: dict[str, StepStore],
        enable_metadata: bool = True,
        pipeline_path: Optional[Path] = None,
    ) -> Distiset:
        """Builds the datasets from the stored batches of the leaf steps.

        Args:
            stores: leaf step name -> its store.
            enable_metadata: keep the `potstill_metadata` column.
            pipeline_path: the run's `pipeline.yaml`.

        Returns:
            The Distiset.
        """
        import pyarrow as pa
        from datasets import Dataset, DatasetDict

        distiset = cls(pipeline_path=pipeline_path)
        for name, store in stores.items():
            tables = [t for t in store.read_all_tables() if t.num_columns]
            try:
                table = (
                    pa.concat_tables(tables, promote_options="permissive")
                    if tables
                    else pa.table({})
                )
            except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
                raise BatchWriteError(
                    f"The batches of step {name!r} cannot be merged into one dataset: {error}. "
                    "A column must hold one type in every batch: fix the step (or its input "
                    "data) so it does, then run the pipeline again."
                ) from None
            if not enable_metadata and METADATA_COLUMN in table.column_names:
                table = table.drop_columns([METADATA_COLUMN])
            key = "default" if len(stores) == 1 else name
            distiset[key] = DatasetDict({"train": Dataset(table)})
        return distiset

    def save_to_disk(
        self, distiset_path: Union[str, Path], save_pipeline_config: bool = True, **kwargs: Any
    ) -> Path:
        """Saves every dataset (and the pipeline config) under a directory.

        Args:
            distiset_path: the directory to write; each config goes in a sub-directory.
            save_pipeline_config: also copy `pipeline.yaml` there.
            **kwargs: passed to `DatasetDict.save_to_disk`.

        Returns:
            The directory.
        """
        root = Path(distiset_path)
        root.mkdir(parents=True, exist_ok=True)
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
        """Splits every `train` split into `train` and `test`.

        Args:
            train_size: the share of rows that stay in `train`.
            shuffle: shuffle before splitting.
            seed: the shuffle's seed.

        Returns:
            The Distiset itself, modified.
        """
        for name, dataset_dict in self.items():
            self[name] = dataset_dict["train"].train_test_split(
                train_size=train_size, shuffle=shuffle, seed=seed
            )
        return self

    def push_to_hub(
        self, repo_id: str, private: bool = False, token: Optional[str] = None, **kwargs: Any
    ) -> None:
        """Pushes each dataset to the Hugging Face Hub as a config of `repo_id`.

        Args:
            repo_id: the dataset repository.
            private: create it private.
            token: the Hub token (defaults to the one `huggingface_hub` finds).
            **kwargs: passed to `DatasetDict.push_to_hub`.
        """
        for name, dataset_dict in self.items():
            dataset_dict.push_to_hub(
                repo_id, config_name=name, private=private, token=token, **kwargs
            )

    @property
    def configs(self) -> Iterable[str]:
        """The config names (leaf steps, or `"default"`)."""
        return self.keys()

    def __repr__(self) -> str:
        inner = ",\n".join(f"  {name}: {value!r}" for name, value in self.items())
        return f"Distiset({{\n{inner}\n}})"
