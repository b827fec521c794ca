"""One LLM instance shared by several tasks of a pipeline."""

from __future__ import annotations

from tests.core.fakes import EchoLLM, LoadCounter

from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration


def test_a_shared_local_llm_loads_once_and_is_never_called_concurrently() -> None:
    LoadCounter.reset()
    llm = EchoLLM(latency=0.02)
    with Pipeline(name="shared-local") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": f"q{i}"} for i in range(40)], batch_size=5)
        first = TextGeneration(llm=llm, input_batch_size=5)
        second = TextGeneration(
            llm=llm, input_batch_size=5, output_mappings={"generation": "other"}
        )
        load >> [first, second]

    distiset = pipeline.run(use_cache=False)

    assert LoadCounter.loads == 1
    assert llm._peak == 1  # the two tasks' worker threads took turns
    assert len(llm._threads) == 2  # ...although each task ran in its own thread
    rows = distiset[first.name]["train"]
    assert list(rows["generation"]) == [f"q{i} #0" for i in range(40)]
    assert list(distiset[second.name]["train"]["other"]) == [f"q{i} #0" for i in range(40)]


def test_a_task_loaded_by_hand_always_loads_its_llm() -> None:
    LoadCounter.reset()
    llm = EchoLLM()
    TextGeneration(llm=llm).load()
    TextGeneration(llm=llm).load()
    assert LoadCounter.loads == 2
