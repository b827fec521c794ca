"""Magpie and EvolInstruct for real on local models: the embedded SmolLM2 (llama.cpp,
`n_threads=1`, a few tokens) and a tiny random transformers model (its prompts)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from potstill.steps.tasks import EvolInstruct, Magpie
from potstill.typing import ChatType

SYSTEM: ChatType = [{"role": "system", "content": "You are a chef."}]

needs_llama_cpp = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None, reason="needs llama-cpp-python"
)


@pytest.fixture(scope="module")
def smollm2() -> Iterator[object]:
    from potstill.llms import LlamaCppLLM

    llm = LlamaCppLLM(
        n_threads=1,
        magpie_pre_query_template="qwen2",  # SmolLM2's chat template is ChatML
        generation_kwargs={"max_new_tokens": 12, "temperature": 0.7},
    )
    llm.load()
    yield llm
    llm.unload()


@needs_llama_cpp
def test_magpie_on_smollm2_writes_the_user_turn_from_a_raw_prompt(smollm2) -> None:
    task = Magpie(llm=smollm2, only_instruction=True, system_prompt=SYSTEM[0]["content"])
    (row,) = next(task.process([{}]))
    assert isinstance(row["instruction"], str) and row["instruction"]
    # The prompt was the system turn then the opened user turn, completed as raw text: its
    # token count is that text's (a chat completion would have opened the assistant's turn).
    prompt = "<|im_start|>system\nYou are a chef.<|im_end|>\n<|im_start|>user\n"
    tokens = smollm2._model.tokenize(prompt.encode(), add_bos=False, special=True)
    statistics = row["potstill_metadata"][f"statistics_{task.name}"]
    assert statistics["input_tokens"] == len(tokens)
    assert 1 <= statistics["output_tokens"] <= 12


@needs_llama_cpp
def test_magpie_on_smollm2_answers_the_instruction(smollm2) -> None:
    task = Magpie(llm=smollm2, system_prompt=SYSTEM[0]["content"])
    (row,) = next(task.process([{}]))
    assert isinstance(row["instruction"], str) and row["instruction"]
    assert isinstance(row["response"], str) and row["response"]
    assert row["potstill_metadata"][f"error_{task.name}"] is None


@needs_llama_cpp
def test_evol_instruct_on_smollm2(smollm2) -> None:
    task = EvolInstruct(llm=smollm2, num_evolutions=1, generate_answers=True)
    (row,) = next(task.process([{"instruction": "Name a fruit."}]))
    assert isinstance(row["evolved_instruction"], str) and row["evolved_instruction"]
    assert isinstance(row["answer"], str) and row["answer"]
    raw_inputs = row["potstill_metadata"][f"raw_input_{task.name}"]
    assert "Original prompt:\nName a fruit." in raw_inputs[0][0]["content"]
    assert raw_inputs[1] == [{"role": "user", "content": row["evolved_instruction"]}]


def test_transformers_ends_the_rendered_prompt_with_the_pre_query_template(
    tmp_path: Path,
) -> None:
    pytest.importorskip("transformers")
    from tests.local.tiny_hf import build_tiny_model

    from potstill.llms import TransformersLLM

    # The tiny tokenizer's template is `<s>role content</s>` per message.
    llm = TransformersLLM(
        model=str(build_tiny_model(tmp_path)),
        magpie_pre_query_template="<s>user ",
        use_magpie_template=True,
    )
    llm.load()
    assert llm.prepare_input([{"role": "system", "content": "tell me"}]) == (
        "<s>system tell me</s><s>user "
    )
    assert llm.prepare_input([]) == "<s>user "
    assert llm.prepare_input([{"role": "user", "content": "yes"}]) == "<s>user yes</s><s>assistant "
    (output,) = llm.generate(inputs=[[{"role": "system", "content": "tell me"}]], max_new_tokens=4)
    assert isinstance(output[0], str)
