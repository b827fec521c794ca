"""The examples of the seed document (`seed/llms.md`), with `distilabel` renamed to
`potstill` and `OPENAI_BASE_URL`/`OPENAI_API_KEY` pointing at the loopback server.

The first three snippets are kept verbatim as text and executed as `__main__`; the value
of a snippet's last expression (e.g. `llm.generate(...)`) is captured so the test can
compare it with the result the seed documents. The custom-LLM snippet is written out as
real code below, with its `...` bodies implemented.
"""

from __future__ import annotations

import ast
import asyncio

# The seed's custom-LLM snippet uses `List` without importing it; this import is the only
# addition to its code (besides giving the `...` bodies real implementations).
from typing import Any, List

import numpy as np
import pytest
from pydantic import validate_call
from tests.fake_server import FakeServer

from potstill.errors import LLMNotLoadedError
from potstill.llms import LLM, AsyncLLM
from potstill.llms.typing import GenerateOutput, HiddenState
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import GenerateEmbeddings, TextGeneration
from potstill.steps.tasks.typing import ChatType

STANDALONE = """
from distilabel.llms import OpenAILLM

llm = OpenAILLM(model="gpt-4")
llm.load()

llm.generate(
    inputs=[
        [
            {"role": "user", "content": "What's the capital of Spain?"},
        ],
    ],
)
# "The capital of Spain is Madrid."
"""

WITHIN_A_TASK = """
from distilabel.llms import OpenAILLM
from distilabel.steps.tasks import TextGeneration


llm = OpenAILLM(model="gpt-4")
task = TextGeneration(name="text_generation", llm=llm)

task.load()

next(task.process(inputs=[{"instruction": "What's the capital of Spain?"}]))
# [{'instruction': "What's the capital of Spain?", "generation": "The capital of Spain is Madrid."}]
"""

RUNTIME_PARAMETERS = """
from distilabel.pipeline import Pipeline
from distilabel.llms import OpenAILLM
from distilabel.steps import LoadDataFromDicts
from distilabel.steps.tasks import TextGeneration


with Pipeline(name="text-generation-pipeline") as pipeline:
    load_dataset = LoadDataFromDicts(
        name="load_dataset",
        data=[
            {
                "instruction": "Write a short story about a dragon that saves a princess from a tower.",
            },
        ],
    )

    text_generation = TextGeneration(
        name="text_generation",
        llm=OpenAILLM(model="gpt-4"),
    )

    load_dataset >> text_generation

if __name__ == "__main__":
    pipeline.run(params={text_generation.name: {"llm": {"generation_kwargs": {"temperature": 0.3}}}})
"""

STORY = "Write a short story about a dragon that saves a princess from a tower."


def run_seed_snippet(source: str) -> dict[str, Any]:
    """Executes a seed snippet as `__main__` with the import renamed.

    The value of the last expression statement (also inside a trailing `if` block) is
    stored as `_last` in the returned namespace.
    """
    code = source.replace("distilabel", "potstill")
    tree = ast.parse(code)
    body = tree.body
    while isinstance(body[-1], ast.If):
        body = body[-1].body
    if isinstance(body[-1], ast.Expr):
        body[-1] = ast.Assign(targets=[ast.Name(id="_last", ctx=ast.Store())], value=body[-1].value)
    ast.fix_missing_locations(tree)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(tree, "<seed snippet>", "exec"), namespace)
    return namespace


def test_snippets_are_the_seed_with_only_the_import_renamed() -> None:
    for snippet in (STANDALONE, WITHIN_A_TASK, RUNTIME_PARAMETERS):
        renamed = snippet.replace("distilabel", "potstill")
        assert renamed.count("potstill") == snippet.count("distilabel") > 0
        assert "distilabel" not in renamed


def test_standalone_example(openai_env: FakeServer) -> None:
    namespace = run_seed_snippet(STANDALONE)

    assert namespace["_last"] == [["The capital of Spain is Madrid."]]
    [request] = openai_env.requests
    assert request.body["model"] == "gpt-4"
    assert request.body["messages"] == [{"role": "user", "content": "What's the capital of Spain?"}]


def test_within_a_task_example(openai_env: FakeServer) -> None:
    namespace = run_seed_snippet(WITHIN_A_TASK)

    [row] = namespace["_last"]
    # the seed's documented row, plus the model name and the metadata potstill adds
    assert {k: row[k] for k in ("instruction", "generation")} == {
        "instruction": "What's the capital of Spain?",
        "generation": "The capital of Spain is Madrid.",
    }
    assert row["model_name"] == "gpt-4"
    assert (
        row["potstill_metadata"]["raw_output_text_generation"] == "The capital of Spain is Madrid."
    )


def test_runtime_parameters_example(openai_env: FakeServer) -> None:
    namespace = run_seed_snippet(RUNTIME_PARAMETERS)

    distiset = namespace["_last"]
    train = distiset["default"]["train"]
    assert train["instruction"] == [STORY]
    assert train["generation"] == [f"Echo: {STORY}"]
    assert train["model_name"] == ["gpt-4"]
    [request] = openai_env.requests
    assert request.body["temperature"] == 0.3

    # the same run again is served from the per-run store without a request
    pipeline, step = namespace["pipeline"], namespace["text_generation"]
    again = pipeline.run(params={step.name: {"llm": {"generation_kwargs": {"temperature": 0.3}}}})
    assert again["default"]["train"]["generation"] == [f"Echo: {STORY}"]
    assert openai_env.state.request_count == 1


def test_runtime_parameters_example_with_distilabels_keyword(openai_env: FakeServer) -> None:
    namespace = run_seed_snippet(RUNTIME_PARAMETERS.replace("params=", "parameters="))

    assert namespace["_last"]["default"]["train"]["generation"] == [f"Echo: {STORY}"]
    assert openai_env.requests[0].body["temperature"] == 0.3


# -- the custom-LLM example, with its `...` bodies implemented -----------------------------------------


def _embedding_matrix(input: ChatType, width: int = 4) -> np.ndarray:
    text = input[-1]["content"]
    return np.arange(len(text) * width, dtype=np.float32).reshape(len(text), width)


class CustomLLM(LLM):
    @property
    def model_name(self) -> str:
        return "my-model"

    @validate_call
    def generate(
        self, inputs: List[ChatType], num_generations: int = 1, **kwargs: Any
    ) -> List[GenerateOutput]:
        outputs = []
        for input in inputs:
            generations = []
            for _ in range(num_generations):
                generations.append(
                    f"my-model says: {input[-1]['content']}{kwargs.get('suffix', '')}"
                )
            outputs.append(generations)
        return outputs

    def get_last_hidden_state(self, inputs: List[ChatType]) -> List[HiddenState]:
        return [_embedding_matrix(input) for input in inputs]


class CustomAsyncLLM(AsyncLLM):
    @property
    def model_name(self) -> str:
        return "my-model"

    @validate_call
    async def agenerate(
        self, input: ChatType, num_generations: int = 1, **kwargs: Any
    ) -> GenerateOutput:
        generations = []
        for _ in range(num_generations):
            await asyncio.sleep(0)
            generations.append(
                f"my-async-model says: {input[-1]['content']}{kwargs.get('suffix', '')}"
            )
        return generations

    def get_last_hidden_state(self, inputs: List[ChatType]) -> List[HiddenState]:
        return [_embedding_matrix(input) for input in inputs]


CUSTOM = [(CustomLLM, "my-model says: "), (CustomAsyncLLM, "my-async-model says: ")]


@pytest.mark.parametrize(("llm_class", "prefix"), CUSTOM)
def test_custom_llm_standalone(llm_class: type[LLM], prefix: str) -> None:
    llm = llm_class()
    with pytest.raises(LLMNotLoadedError, match=r"load\(\)"):
        llm.generate(inputs=[[{"role": "user", "content": "x"}]])
    llm.load()

    outputs = llm.generate(
        inputs=[
            [{"role": "user", "content": "What's the capital of Spain?"}],
            [{"role": "user", "content": "b"}],
        ],
        num_generations="2",  # validate_call coerces it
    )

    assert llm.model_name == "my-model"
    assert outputs == [
        [f"{prefix}What's the capital of Spain?"] * 2,
        [f"{prefix}b"] * 2,
    ]


@pytest.mark.parametrize(("llm_class", "prefix"), CUSTOM)
def test_custom_llm_inside_text_generation(llm_class: type[LLM], prefix: str) -> None:
    task = TextGeneration(name="text_generation", llm=llm_class())
    task.load()

    [row] = next(task.process(inputs=[{"instruction": "What's the capital of Spain?"}]))

    assert row["instruction"] == "What's the capital of Spain?"
    assert row["generation"] == f"{prefix}What's the capital of Spain?"
    assert row["model_name"] == "my-model"


@pytest.mark.parametrize(("llm_class", "prefix"), CUSTOM)
def test_custom_llm_in_a_pipeline_with_runtime_parameters(
    llm_class: type[LLM], prefix: str
) -> None:
    with Pipeline(name=f"custom-{llm_class.__name__}") as pipeline:
        load_dataset = LoadDataFromDicts(data=[{"instruction": "a"}, {"instruction": "b"}])
        text_generation = TextGeneration(llm=llm_class())
        load_dataset >> text_generation

    # `**kwargs` accepts any generation kwarg
    assert text_generation.llm.runtime_parameters_names["generation_kwargs"] == {}
    distiset = pipeline.run(
        params={
            text_generation.name: {
                "num_generations": 2,
                "llm": {"generation_kwargs": {"suffix": "!"}},
            }
        }
    )

    assert distiset["default"]["train"]["generation"] == [
        f"{prefix}a!",
        f"{prefix}a!",
        f"{prefix}b!",
        f"{prefix}b!",
    ]


@pytest.mark.parametrize(("llm_class", "prefix"), CUSTOM)
def test_custom_llm_hidden_states_in_generate_embeddings(llm_class: type[LLM], prefix: str) -> None:
    with Pipeline(name=f"embed-{llm_class.__name__}") as pipeline:
        load_dataset = LoadDataFromDicts(data=[{"text": "abc"}, {"text": "hello"}])
        embed = GenerateEmbeddings(llm=llm_class())
        load_dataset >> embed

    train = pipeline.run()["default"]["train"]

    assert train["embedding"] == [
        _embedding_matrix([{"role": "user", "content": t}])[-1].tolist() for t in ("abc", "hello")
    ]
    assert train["embedding"][0] == [8.0, 9.0, 10.0, 11.0]
    assert train["model_name"] == ["my-model", "my-model"]
