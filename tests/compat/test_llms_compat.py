"""LLMs as distilabel 1.1 scripts configure them, with `potstill` imports."""

from __future__ import annotations

import json
import logging
import threading
import warnings
from typing import Any, List

import pytest
from tests.fake_server import FakeServer
from tests.providers.contract import SECRET, chat, received

from potstill.errors import PotstillUserError
from potstill.llms import (
    LLM,
    CudaDevicePlacementMixin,
    InferenceEndpointsLLM,
    LiteLLM,
    TransformersLLM,
    vLLM,
)
from potstill.llms.mixins import cuda_device_placement as mixins
from potstill.llms.typing import GenerateOutput
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration
from potstill.steps.tasks.typing import ChatType


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in for a machine with two CUDA devices (only the count is needed)."""
    monkeypatch.setattr(mixins, "cuda_device_count", lambda: 2)


class LocalModelLLM(LLM, CudaDevicePlacementMixin):
    """A user's local LLM written for distilabel 1.1: the mixin's `load` places it."""

    model: str = "local"

    def load(self) -> None:
        CudaDevicePlacementMixin.load(self)
        super().load()

    def unload(self) -> None:
        CudaDevicePlacementMixin.unload(self)
        super().unload()

    @property
    def model_name(self) -> str:
        return self.model

    def generate(
        self, inputs: List[ChatType], num_generations: int = 1, **kwargs: Any
    ) -> List[GenerateOutput]:
        devices = ",".join(map(str, self.assigned_cuda_devices))
        return [[f"on {devices}"] * num_generations for _ in inputs]


# -- CudaDevicePlacementMixin ------------------------------------------------------------


def test_auto_gives_each_local_llm_a_free_device(two_gpus: None) -> None:
    first, second, third = (TransformersLLM(model="m") for _ in range(3))

    assert first._placement() == ("cuda:0", {})
    assert second._placement() == ("cuda:1", {})
    with pytest.raises(RuntimeError, match=r"Couldn't find 1 free CUDA device.*0: .*1: "):
        third._placement()

    second._release()
    assert third._placement() == ("cuda:1", {})


def test_local_llms_of_one_pipeline_spread_over_the_devices(two_gpus: None) -> None:
    with Pipeline(name="two-local-models") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "hi"}])
        load >> [
            TextGeneration(name="left", llm=LocalModelLLM()),
            TextGeneration(name="right", llm=LocalModelLLM()),
        ]

    distiset = pipeline.run(use_cache=False)

    placed = {distiset[name]["train"][0]["generation"] for name in ("left", "right")}
    assert placed == {"on 0", "on 1"}
    assert mixins._PLACEMENTS == {}, "unload gives the devices back"


def test_explicit_devices_are_checked(two_gpus: None, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(PotstillUserError, match=r"invalid `cuda_devices=\[2\]`.*0 to 1"):
        LocalModelLLM(cuda_devices=[2]).load()
    with pytest.raises(PotstillUserError, match="invalid"):
        LocalModelLLM(cuda_devices=[0, 0]).load()

    holder = LocalModelLLM(cuda_devices=[1])
    holder.load()
    sharer = LocalModelLLM(cuda_devices=[1])
    with caplog.at_level(logging.WARNING, logger="potstill.llms.cuda"):
        sharer.load()
    assert sharer.assigned_cuda_devices == [1]
    assert "also used by" in caplog.text


def test_without_cuda_auto_assigns_nothing_and_a_list_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(mixins, "cuda_device_count", lambda: 0)
    llm = LocalModelLLM()
    llm.load()
    assert llm.assigned_cuda_devices == []
    assert llm.cuda_visible_devices_value() is None
    with pytest.raises(PotstillUserError, match="no CUDA device is available"):
        LocalModelLLM(cuda_devices=[0]).load()
    with pytest.raises(PotstillUserError, match="no CUDA device is available"):
        TransformersLLM(model="m", device="cuda")._placement()


def test_vllm_asks_for_its_parallel_size_and_sees_it_in_the_environment(
    two_gpus: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    both = vLLM(model="m", extra_kwargs={"tensor_parallel_size": 2})
    assert both._assign_cuda_devices() == [0, 1]
    with both.cuda_visible_devices_env():
        seen = __import__("os").environ["CUDA_VISIBLE_DEVICES"]
    assert seen == "0,1"
    assert "CUDA_VISIBLE_DEVICES" not in __import__("os").environ, "restored afterwards"

    with pytest.raises(RuntimeError, match="Couldn't find 1 free CUDA device"):
        vLLM(model="m")._assign_cuda_devices()
    with pytest.raises(PotstillUserError, match="needs 2"):
        vLLM(
            model="m", cuda_devices=[0], extra_kwargs={"tensor_parallel_size": 2}
        )._assign_cuda_devices()


def test_indices_are_read_through_an_existing_cuda_visible_devices(
    two_gpus: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    llm = vLLM(model="m", cuda_devices=[1])
    llm._assign_cuda_devices()
    assert llm.cuda_visible_devices_value() == "6"


def test_set_device_placement_info_shares_a_registry(two_gpus: None) -> None:
    shared: dict[str, Any] = {"another_step": [0]}
    llm = LocalModelLLM()
    llm.set_device_placement_info("text_generation_0", shared, threading.Lock())
    llm.load()
    assert llm.assigned_cuda_devices == [1]
    assert shared["text_generation_0"][1] == [1]
    llm.unload()
    assert "text_generation_0" not in shared


def test_cuda_devices_is_dumped_and_loaded() -> None:
    llm = TransformersLLM(model="m", cuda_devices=[0, 1])
    assert llm.dump()["cuda_devices"] == [0, 1]
    assert LLM.from_dict(llm.dump()).cuda_devices == [0, 1]


# -- InferenceEndpointsLLM(use_openai_client=True) ----------------------------------------


def test_use_openai_client_is_accepted_with_a_deprecation_warning() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        llm = InferenceEndpointsLLM(base_url="http://127.0.0.1:9", use_openai_client=True)

    [warning] = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert "use_openai_client" in str(warning.message)
    assert "no longer needed" in str(warning.message)
    assert warning.filename == __file__, "the warning points at the caller"
    assert "use_openai_client" not in llm.dump()


# -- LiteLLM's provider kwargs -------------------------------------------------------------


def test_litellm_takes_distilabels_provider_kwargs_and_keeps_the_key_secret(
    fake_server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    fake_server.configure(require_api_key=SECRET)
    caplog.set_level(logging.DEBUG)
    with Pipeline(name="litellm-kwargs") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "What's the capital of Spain?"}])
        task = TextGeneration(
            llm=LiteLLM(
                model="openai/gpt-fake",
                generation_kwargs={"api_base": fake_server.openai_base_url, "api_key": "nope"},
            )
        )
        load >> task

    distiset = pipeline.run(
        parameters={
            task.name: {
                "llm": {
                    "generation_kwargs": {
                        "api_base": fake_server.openai_base_url,
                        "api_key": SECRET,
                        "custom_llm_provider": "openai",
                        "temperature": 0.4,
                    }
                }
            }
        },
        use_cache=False,
    )

    assert distiset["default"]["train"][0]["generation"] == "The capital of Spain is Madrid."
    [request] = received(fake_server, "openai")
    assert request.headers["authorization"] == f"Bearer {SECRET}"
    assert request.body["temperature"] == 0.4
    llm = task.llm
    shown = [json.dumps(pipeline.dump()), repr(llm), str(llm.generation_kwargs), caplog.text]
    shown += [
        p.read_text() for p in pipeline.cache_dir.rglob("*") if p.suffix in (".yaml", ".jsonl")
    ]
    for text in shown:
        assert SECRET not in text and "nope" not in text


def test_litellm_agenerate_takes_an_api_key(fake_server: FakeServer) -> None:
    fake_server.configure(require_api_key=SECRET)
    llm = LiteLLM(model="openai/gpt-fake", api_base=fake_server.openai_base_url, api_key="x")
    llm.load()

    outputs = llm.generate([chat("What's the capital of Spain?")], api_key=SECRET)

    assert outputs == [["The capital of Spain is Madrid."]]
    assert received(fake_server, "openai")[0].headers["authorization"] == f"Bearer {SECRET}"


# -- LLM introspection -------------------------------------------------------------------


def test_generate_parameters_and_parsed_docstring(fake_server: FakeServer) -> None:
    llm = LiteLLM(model="openai/gpt-fake")

    names = [parameter.name for parameter in llm.generate_parameters]
    assert names[:3] == ["input", "num_generations", "functions"]
    assert "api_key" in names
    parsed = llm.generate_parsed_docstring
    assert parsed["args"]["temperature"] == "the sampling temperature."
    assert parsed["short_description"].startswith("Generates")
