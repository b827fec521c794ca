"""Every built-in LLM, step and task, and the pipeline, pickle before and after `load()`: the
Ray engine sends each step to its replicas pickled. A copy keeps the configuration (secrets
included: they travel in memory), none of the runtime state (clients, models, locks, usage),
starts unloaded, and loads and works again."""

from __future__ import annotations

import importlib
import inspect
import json
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.fake_server import FakeServer
from tests.providers.cases import ProviderCase, cases

import potstill.steps
import potstill.steps.tasks
from potstill.llms import LlamaCppLLM, OpenAILLM, TransformersLLM, vLLM
from potstill.llms.base import LLM
from potstill.llms.testing import TestLLM
from potstill.pipeline import Pipeline, sample_n_steps
from potstill.steps import LoadDataFromDicts
from potstill.steps.base import _Step
from potstill.steps.tasks import TextGeneration

PICKLERS = [pickle]
try:  # what Ray uses (it pickles classes of a script by value)
    PICKLERS.append(importlib.import_module("ray.cloudpickle"))
except ImportError:
    pass


def copies(value: Any) -> Iterator[Any]:
    for pickler in PICKLERS:
        yield pickle.loads(pickler.dumps(value))


def same_config(copy: Any, original: Any) -> None:
    assert type(copy) is type(original)
    assert copy.dump() == original.dump()


# -- LLMs --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases())
def test_every_hosted_llm_pickles_before_and_after_load(
    case: ProviderCase,
    fake_server: FakeServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    if case.setup is not None:
        case.setup(monkeypatch, tmp_path)
    llm = case.make(fake_server)
    for copy in copies(llm):
        same_config(copy, llm)
        assert copy._secret() == llm._secret() and not copy.is_loaded

    llm.load()
    try:
        answer = llm.generate([[{"role": "user", "content": "hi"}]])  # a client exists now
        for copy in copies(llm):
            same_config(copy, llm)
            assert not copy.is_loaded and copy.usage.requests == 0
            copy.load()
            try:
                assert copy.generate([[{"role": "user", "content": "hi"}]]) == answer
            finally:
                copy.unload()
    finally:
        llm.unload()


def test_local_llms_pickle_without_their_model(tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests.local.tiny_hf import build_tiny_model

    unloaded = vLLM(model="some/model", extra_kwargs={"tensor_parallel_size": 2})
    for copy in copies(unloaded):
        same_config(copy, unloaded)
    tiny = build_tiny_model(tmp_path_factory.mktemp("tiny-pickle"))
    greedy: list[tuple[LLM, dict[str, Any]]] = [
        (LlamaCppLLM(n_threads=1, seed=1), {"max_new_tokens": 4, "temperature": 0.0}),
        (TransformersLLM(model=str(tiny)), {"max_new_tokens": 4, "do_sample": False}),
    ]
    for llm, kwargs in greedy:
        for copy in copies(llm):
            same_config(copy, llm)
        llm.load()
        try:
            chat = [{"role": "user", "content": "Hello"}]
            answer = llm.generate([chat], **kwargs)
            payload = pickle.dumps(llm)
            assert len(payload) < 10_000  # the model stays behind
            for copy in copies(llm):
                assert not copy.is_loaded and copy._model is None
                copy.load()
                try:
                    assert copy.generate([chat], **kwargs) == answer
                finally:
                    copy.unload()
        finally:
            llm.unload()


# -- steps and tasks ---------------------------------------------------------------------------

# What the built-in steps and tasks need to be built (and loaded, offline).
ARGUMENTS: dict[str, dict[str, Any]] = {
    "CombineColumns": {"columns": ["a"]},
    "ExpandColumns": {"columns": ["a"]},
    "GroupColumns": {"columns": ["a"]},
    "KeepColumns": {"columns": ["a"]},
    "MergeColumns": {"columns": ["a", "b"]},
    "LoadDataFromDicts": {"data": [{"a": 1}]},
    "EvolComplexity": {"num_evolutions": 1},
    "EvolInstruct": {"num_evolutions": 1},
    "EvolQuality": {"num_evolutions": 1},
    "EvolComplexityGenerator": {"num_instructions": 1},
    "EvolInstructGenerator": {"num_instructions": 1},
    "MagpieGenerator": {"num_rows": 2},
    "PrometheusEval": {"mode": "absolute", "rubric": "honesty"},
}


def builtin_step_classes() -> list[type[_Step]]:
    found = []
    for module in (potstill.steps, potstill.steps.tasks):
        for name in module.__all__:
            value = getattr(module, name)
            if (
                inspect.isclass(value)
                and issubclass(value, _Step)
                and not inspect.isabstract(value)
            ):
                found.append(value)
    return found


def build(cls: type[_Step], server: FakeServer, data: Path) -> _Step:
    arguments = dict(ARGUMENTS.get(cls.__name__, {}))
    if "llm" in cls.model_fields:
        magpie = cls.__name__.startswith("Magpie")
        arguments["llm"] = (
            OpenAILLM(
                model="m",
                base_url=server.openai_base_url,
                api_key="test-key",
                magpie_pre_query_template="qwen2",
            )
            if magpie
            else TestLLM()
        )
    if "data_files" in cls.model_fields:
        arguments["data_files"] = str(data / "rows.jsonl")
    if "dataset_path" in cls.model_fields:
        arguments["dataset_path"] = str(data / "saved")
    if "repo_id" in cls.model_fields and cls.__name__ != "PushToHub":
        arguments["repo_id"] = str(data / "hub")
    return cls(**arguments)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    from datasets import Dataset

    rows = [{"instruction": "q", "a": 1, "b": 2}]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (tmp_path / "hub").mkdir()
    (tmp_path / "hub" / "train.jsonl").write_text(json.dumps(rows[0]) + "\n")
    Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    return tmp_path


@pytest.mark.parametrize("cls", builtin_step_classes(), ids=lambda cls: cls.__name__)
def test_every_builtin_step_and_task_pickles_before_and_after_load(
    cls: type[_Step], fake_server: FakeServer, data: Path
) -> None:
    with Pipeline(name="pickled"):
        step = build(cls, fake_server, data)
    for copy in copies(step):
        same_config(copy, step)
        assert copy.pipeline is None  # a step travels alone, not with its whole pipeline

    step.load()
    try:
        for copy in copies(step):
            same_config(copy, step)
            llm = getattr(copy, "llm", None)
            assert llm is None or (isinstance(llm, LLM) and not llm.is_loaded)
            copy.load()
            copy.unload()
    finally:
        step.unload()


# -- the pipeline ------------------------------------------------------------------------------


def test_the_pipeline_pickles_with_its_steps_connections_and_routing(
    fake_server: FakeServer,
) -> None:
    with Pipeline(name="whole") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": f"q{i}"} for i in range(4)])
        first = TextGeneration(
            name="first",
            llm=OpenAILLM(model="m", base_url=fake_server.openai_base_url, api_key="test-key"),
        )
        second = TextGeneration(name="second", llm=TestLLM())
        load >> sample_n_steps(1) >> [first, second]
    expected = pipeline.run(use_cache=False)  # loads, runs and unloads every step

    for copy in copies(pipeline):
        assert copy.dump() == pipeline.dump()
        assert all(step.pipeline is copy for step in copy.dag.steps.values())
        assert copy.dag.connections() == pipeline.dag.connections()
        rows = copy.run(use_cache=False)
        assert sorted(rows) == sorted(expected)
