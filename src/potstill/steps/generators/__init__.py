"""Generator steps: where a pipeline's rows come from."""

from potstill.steps.generators.data import LoadDataFromDicts
from potstill.steps.generators.huggingface import (
    LoadDataFromDisk,
    LoadDataFromFileSystem,
    LoadDataFromHub,
    LoadHubDataset,
)

__all__ = [
    "LoadDataFromDicts",
    "LoadDataFromDisk",
    "LoadDataFromFileSystem",
    "LoadDataFromHub",
    "LoadHubDataset",
]
