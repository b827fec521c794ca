"""The Hub steps and `Distiset.push_to_hub`, through the real `huggingface_hub` and `datasets`
clients against the loopback Hub (`tests/fake_hub`): LoadDataFromHub/LoadHubDataset (splits,
configs, streaming, num_examples), PushToHub, and the dataset card with `pipeline.yaml`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from datasets import Dataset, DatasetDict, load_dataset
from tests.fake_hub import FakeHub, parquet_bytes

from potstill.cli.config import load_pipeline
from potstill.errors import PotstillUserError
from potstill.pipeline import Pipeline
from potstill.pipeline.engine import PipelineRunError
from potstill.steps import (
    KeepColumns,
    LoadDataFromDicts,
    LoadDataFromHub,
    LoadHubDataset,
    PushToHub,
)

ROWS = [{"prompt": f"question {i}", "completion": f"answer {i}"} for i in range(5)]
REPO = "potstill-tests/instructions"


def seed(hub: FakeHub) -> None:
    """A dataset with a `test` split (default config) and a `small` config."""
    hub.state.add_files(
        "dataset",
        REPO,
        {
            "data/test-00000-of-00001.parquet": parquet_bytes(ROWS),
            "small/train-00000-of-00001.parquet": parquet_bytes(ROWS[:2]),
            "README.md": (
                b"---\nconfigs:\n- config_name: default\n  data_files:\n  - split: test\n"
                b"    path: data/test-*\n- config_name: small\n  data_files:\n"
                b"  - split: train\n    path: small/train-*\n---\n"
            ),
        },
    )


def batches(step: Any) -> list[tuple[list[dict[str, Any]], bool]]:
    step.load()
    return list(step.process())


def test_load_data_from_hub_split_config_and_num_examples(fake_hub: FakeHub) -> None:
    seed(fake_hub)

    test_split = LoadDataFromHub(repo_id=REPO, split="test", batch_size=2)
    assert test_split.get_outputs() == ["prompt", "completion"]
    assert batches(test_split) == [(ROWS[0:2], False), (ROWS[2:4], False), (ROWS[4:], True)]
    assert test_split.total_rows() == 5

    small = LoadHubDataset(repo_id=REPO, config="small")  # distilabel 1.1's name
    assert batches(small) == [(ROWS[:2], True)]

    limited = LoadDataFromHub(repo_id=REPO, split="test", num_examples=3)
    assert batches(limited) == [(ROWS[:3], True)]


def test_load_data_from_hub_streaming(fake_hub: FakeHub) -> None:
    seed(fake_hub)

    streamed = LoadDataFromHub(repo_id=REPO, split="test", streaming=True, batch_size=3)
    assert batches(streamed) == [(ROWS[:3], False), (ROWS[3:], True)]
    assert list(streamed.process(offset=4)) == [(ROWS[4:], True)]
    limited = LoadDataFromHub(
        repo_id=REPO, split="test", streaming=True, num_examples=2, batch_size=5
    )
    assert batches(limited) == [(ROWS[:2], True)]
    assert limited.total_rows() == 2


def test_load_data_from_hub_errors_name_the_dataset(fake_hub: FakeHub) -> None:
    seed(fake_hub)

    with pytest.raises(PotstillUserError, match="'potstill-tests/missing'") as error:
        LoadDataFromHub(name="load", repo_id="potstill-tests/missing").load()
    assert "'load'" in str(error.value) and "split 'train'" in str(error.value)
    with pytest.raises(PotstillUserError, match="split 'validation'"):
        LoadDataFromHub(repo_id=REPO, split="validation").load()
    with pytest.raises(PotstillUserError, match="set 'repo_id'"):
        LoadDataFromHub().load()


def test_a_pipeline_from_the_hub(fake_hub: FakeHub, tmp_path: Path) -> None:
    seed(fake_hub)
    with Pipeline(name="hub", cache_dir=tmp_path / "cache") as p:
        load = LoadDataFromHub(name="load", split="test", batch_size=2)
        keep = KeepColumns(columns=["completion"])
        load >> keep

    distiset = p.run(params={"load": {"repo_id": REPO}}, use_cache=False)

    assert distiset["default"]["train"]["completion"] == [row["completion"] for row in ROWS]


def test_push_to_hub_in_a_pipeline(fake_hub: FakeHub, tmp_path: Path) -> None:
    rows = [{"instruction": f"q{i}", "score": i} for i in range(4)]
    rows[3] = {"instruction": "q3"}  # a row without `score`
    with Pipeline(name="push", cache_dir=tmp_path / "cache") as p:
        load = LoadDataFromDicts(data=rows, batch_size=3)
        push = PushToHub(name="push", repo_id="potstill-tests/pushed", split="test")
        load >> push

    distiset = p.run(params={"push": {"token": fake_hub.token}}, use_cache=False)

    assert distiset["default"]["train"].num_rows == 4  # the rows pass on
    pushed = load_dataset("potstill-tests/pushed", split="test")
    assert pushed.to_list() == [*rows[:3], {"instruction": "q3", "score": None}]
    stored = (p.cache_dir).rglob("pipeline.yaml")
    assert all(fake_hub.token not in path.read_text() for path in stored)


def test_push_to_hub_with_a_wrong_token_fails_clearly(fake_hub: FakeHub, tmp_path: Path) -> None:
    step = PushToHub(name="push", repo_id="potstill-tests/pushed", token="not-the-token")
    step.load()

    with pytest.raises(PotstillUserError, match="could not push to the Hub dataset") as error:
        next(step.process([{"a": 1}]))
    assert "not-the-token" not in str(error.value) and "not-the-token" not in repr(step)

    with Pipeline(name="no-repo", cache_dir=tmp_path) as p:
        LoadDataFromDicts(data=[{"a": 1}]) >> PushToHub(name="push")
    with pytest.raises(PotstillUserError, match="'repo_id'"):
        p.run()

    step = PushToHub(repo_id="potstill-tests/pushed")
    step.load()
    assert list(step.process([])) == [[]]  # nothing to push: no repository is created
    assert fake_hub.state.get("dataset", "potstill-tests/pushed") is None


def test_a_failing_push_stops_the_pipeline(fake_hub: FakeHub, tmp_path: Path) -> None:
    with Pipeline(name="bad-push", cache_dir=tmp_path) as p:
        LoadDataFromDicts(data=[{"a": 1}]) >> PushToHub(name="push", repo_id="x/y", token="bad")

    with pytest.raises(PipelineRunError, match="Global step 'push' failed"):
        p.run(use_cache=False)


def test_distiset_push_to_hub_writes_the_card_and_pipeline_yaml(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    with Pipeline(name="cardy", description="Rows for the card test.", cache_dir=tmp_path) as p:
        load = LoadDataFromDicts(name="load", data=ROWS)
        keep_a = KeepColumns(name="prompts", columns=["prompt"])
        keep_b = KeepColumns(name="completions", columns=["completion"])
        load >> [keep_a, keep_b]
    distiset = p.run(use_cache=False)
    repo = "potstill-tests/card"

    distiset.push_to_hub(repo, private=True)

    files = fake_hub.state.get("dataset", repo).head.files  # type: ignore[union-attr]
    assert fake_hub.state.get("dataset", repo).private  # type: ignore[union-attr]
    assert files["pipeline.yaml"] == Path(distiset.pipeline_path).read_bytes()  # type: ignore[arg-type]
    readme = files["README.md"].decode()
    metadata = yaml.safe_load(readme.split("---")[1])
    assert {c["config_name"] for c in metadata["configs"]} == {"prompts", "completions"}
    assert {i["config_name"] for i in metadata["dataset_info"]} == {"prompts", "completions"}
    assert metadata["size_categories"] == "n<1K"
    assert "potstill" in metadata["tags"]
    assert "Rows for the card test." in readme and "`KeepColumns`" in readme
    assert '"prompt": "question 0"' in readme  # an example row
    assert f'load_dataset("{repo}", "completions")' in readme
    command = re.search(r'potstill pipeline run --config "([^"]+)"', readme)
    assert command is not None and command.group(1).startswith(fake_hub.url)

    # The card's command works: the pipeline is rebuilt from the pushed pipeline.yaml.
    rebuilt = load_pipeline(command.group(1))
    assert sorted(rebuilt.dag.steps) == ["completions", "load", "prompts"]
    assert load_dataset(repo, "completions", split="train")["completion"] == [
        row["completion"] for row in ROWS
    ]


def test_push_to_hub_without_a_card_or_a_pipeline(fake_hub: FakeHub) -> None:
    from potstill.distiset import Distiset

    Distiset({"default": DatasetDict({"train": Dataset.from_list(ROWS)})}).push_to_hub(
        "potstill-tests/bare", generate_card=False
    )
    files = fake_hub.state.get("dataset", "potstill-tests/bare").head.files  # type: ignore[union-attr]
    assert "pipeline.yaml" not in files and "potstill" not in files["README.md"].decode()

    Distiset({"default": DatasetDict({"train": Dataset.from_list(ROWS)})}).push_to_hub(
        "potstill-tests/no-pipeline"
    )
    readme = fake_hub.state.get("dataset", "potstill-tests/no-pipeline").head.files["README.md"]  # type: ignore[union-attr]
    assert b"Dataset structure" in readme and b"pipeline run" not in readme
    assert json.loads(json.dumps(ROWS[0])) == ROWS[0]
