"""`LocalLLM`: the release-then-load sequence and the one lock of the in-process models."""

from __future__ import annotations

import threading
import time
from typing import Any, List

import pytest
from pydantic import PrivateAttr

from potstill.llms.local import LocalLLM
from potstill.llms.typing import GenerateOutput
from potstill.steps.tasks.typing import ChatType

CHAT = [{"role": "user", "content": "hi"}]


class FakeModelLLM(LocalLLM):
    """A "model" that is a dict; `_load_model` may fail after acquiring part of it."""

    fail_halfway: bool = False
    pause: float = 0.0

    _events: list[str] = PrivateAttr(default_factory=list)
    _acquired: list[str] = PrivateAttr(default_factory=list)

    @property
    def model_name(self) -> str:
        return "fake-model"

    def _load_model(self) -> None:
        self._acquired.append("weights")
        self._events.append("load")
        if self.fail_halfway:
            raise RuntimeError("out of memory halfway")
        self._model = {"generation": len([e for e in self._events if e == "load"])}

    def _release(self) -> None:
        self._events.append(f"release {sorted(self._acquired)}")
        self._acquired.clear()
        self._model = None

    def generate(
        self, inputs: List[ChatType], num_generations: int = 1, **kwargs: Any
    ) -> List[GenerateOutput]:
        with self._model_lock:
            self._events.append("generate start")
            time.sleep(self.pause)
            model = self._model
            self._events.append("generate end")
        return [[f"model {model['generation']}"] * num_generations for _ in inputs]


def test_a_load_that_fails_halfway_releases_what_it_acquired() -> None:
    llm = FakeModelLLM(fail_halfway=True)

    with pytest.raises(RuntimeError, match="halfway"):
        llm.load()

    assert llm._events == ["load", "release ['weights']"]
    assert llm._acquired == []
    assert not llm.is_loaded


def test_loading_again_releases_the_model_loaded_before() -> None:
    llm = FakeModelLLM()
    llm.load()
    llm.load()

    assert llm._events == ["load", "release ['weights']", "load"]
    assert llm.generate(inputs=[CHAT]) == [["model 2"]]
    llm.unload()
    assert llm._model is None and not llm.is_loaded


def test_unload_waits_for_a_call_that_uses_the_model() -> None:
    llm = FakeModelLLM(pause=0.2)
    llm.load()
    worker = threading.Thread(target=llm.generate, kwargs={"inputs": [CHAT]})
    worker.start()
    time.sleep(0.05)  # the call holds the model

    llm.unload()
    worker.join()

    assert llm._events[-3:] == ["generate start", "generate end", "release ['weights']"]


def test_generate_outputs_takes_the_same_lock_as_generate_without_deadlock() -> None:
    llm = FakeModelLLM()
    llm.load()
    done: list[Any] = []
    thread = threading.Thread(target=lambda: done.append(llm.generate_outputs([CHAT], 2)))
    thread.start()
    thread.join(timeout=10)

    assert not thread.is_alive()
    assert done == [[["model 1", "model 1"]]]
