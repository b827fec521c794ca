"""Every gallery step survives a `pipeline.yaml` round trip and shows in `pipeline info`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from potstill.cli.render import pipeline_info
from potstill.pipeline import Pipeline
from potstill.steps import (
    CombineColumns,
    ConversationTemplate,
    DeitaFiltering,
    ExpandColumns,
    FormatChatGenerationDPO,
    FormatChatGenerationSFT,
    FormatTextGenerationDPO,
    FormatTextGenerationSFT,
    GroupColumns,
    KeepColumns,
    LoadDataFromDicts,
    LoadDataFromDisk,
    LoadDataFromFileSystem,
    LoadDataFromHub,
    LoadHubDataset,
    MergeColumns,
    PushToHub,
)


def test_a_dump_rebuilds_the_same_steps(tmp_path: Path) -> None:
    with Pipeline(name="gallery", cache_dir=tmp_path) as p:
        load = LoadDataFromDicts(data=[{"instruction": "i", "generation": "g"}])
        steps = [
            KeepColumns(columns=["instruction", "generation"]),
            CombineColumns(columns=["generation"], output_columns=["generations"]),
            GroupColumns(columns=["generation"]),
            MergeColumns(columns=["instruction", "generation"], output_column="both"),
            ExpandColumns(columns={"generations": "generation"}),
            ConversationTemplate(input_mappings={"response": "generation"}),
            FormatTextGenerationSFT(),
            FormatChatGenerationSFT(),
            FormatTextGenerationDPO(),
            FormatChatGenerationDPO(),
            DeitaFiltering(data_budget=10, distance_metric="manhattan"),
            PushToHub(repo_id="me/data", token="hf_secret"),
        ]
        LoadDataFromHub(repo_id="me/data", storage_options={"key": "s3cret"})
        LoadHubDataset(split="test")
        LoadDataFromFileSystem(data_files=str(tmp_path / "none-*.jsonl"), encoding="latin-1")
        LoadDataFromDisk(dataset_path="saved", is_distiset=True)
        load >> steps[0]

    dumped = p.dump()
    text = json.dumps(dumped)
    assert "hf_secret" not in text and "s3cret" not in text
    rebuilt = Pipeline.from_dict(dumped)

    assert json.dumps(rebuilt.dump()) == text
    assert type(rebuilt.dag.steps["combine_columns_0"]).__name__ == "CombineColumns"
    assert rebuilt.dag.steps["combine_columns_0"].get_outputs() == ["generations"]
    console = Console(width=250, record=True)
    console.print(pipeline_info(rebuilt))
    shown = console.export_text()
    assert "combine_columns_0" in shown and "generations" in shown
    # `info` does not fail on a dataset it cannot read: it says why in the columns cell.
    assert "No file matches the pattern" in shown


def test_a_loader_takes_no_input_mappings() -> None:
    # Mappings are checked when the pipeline validates (not in the constructor).
    loader = LoadDataFromFileSystem(data_files="x.jsonl", input_mappings={"a": "b"})
    with pytest.raises(ValueError, match="takes no `input_mappings`"):
        loader.verify_inputs_mappings()
