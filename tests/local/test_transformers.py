"""TransformersLLM on a tiny random Llama built on the spot (no hub access)."""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch
from tests.local.tiny_hf import TINY_CHAT_TEMPLATE, build_tiny_model, install_in_hub_cache

from potstill.errors import LLMNotLoadedError, PotstillUserError
from potstill.llms import LLM, TransformersLLM
from potstill.llms.chat_templates import CHATML_TEMPLATE
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import GenerateEmbeddings, TextGeneration

HELLO = [{"role": "user", "content": "hello world what is the capital of spain"}]
SHORT = [{"role": "user", "content": "yes"}]
WITH_SYSTEM = [
    {"role": "system", "content": "tell me a story"},
    {"role": "user", "content": "dragon princess"},
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-chat"))


@pytest.fixture(scope="module")
def base_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same kind of model, with a tokenizer that has no chat template."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-base"), chat_template=None)


@pytest.fixture(scope="module")
def llm(model_dir: Path) -> TransformersLLM:
    llm = TransformersLLM(model=str(model_dir))
    llm.load()
    return llm


def token_count(llm: TransformersLLM, conversation: list) -> int:
    return len(llm._tokenizer(llm.prepare_input(conversation), add_special_tokens=False).input_ids)


# -- prompts and chat templates ---------------------------------------------------------


def test_prompt_uses_the_tokenizers_chat_template(llm: TransformersLLM) -> None:
    assert llm.prepare_input(WITH_SYSTEM) == (
        "<s>system tell me a story</s><s>user dragon princess</s><s>assistant "
    )


def test_tokenizer_without_template_falls_back_to_chatml(base_model_dir: Path) -> None:
    llm = TransformersLLM(model=str(base_model_dir))
    llm.load()
    assert llm.prepare_input(HELLO) == (
        "<|im_start|>user\nhello world what is the capital of spain<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    [[text]] = llm.generate([HELLO], max_new_tokens=3, do_sample=False)
    assert isinstance(text, str)


def test_chat_template_field_replaces_the_tokenizers(model_dir: Path) -> None:
    llm = TransformersLLM(model=str(model_dir), chat_template=CHATML_TEMPLATE)
    llm.load()
    assert llm.prepare_input(SHORT) == "<|im_start|>user\nyes<|im_end|>\n<|im_start|>assistant\n"


def test_tokenizer_field_loads_another_tokenizer(model_dir: Path, base_model_dir: Path) -> None:
    llm = TransformersLLM(model=str(model_dir), tokenizer=str(base_model_dir))
    llm.load()
    assert llm.prepare_input(SHORT).startswith("<|im_start|>user")  # the base tokenizer's


# -- generation -------------------------------------------------------------------------


def test_batch_with_num_generations_and_usage(llm: TransformersLLM) -> None:
    outputs = llm.generate([HELLO, SHORT], num_generations=3, max_new_tokens=5)
    assert len(outputs) == 2
    for output, conversation in zip(outputs, [HELLO, SHORT]):
        assert len(output) == 3
        assert all(isinstance(text, str) for text in output)
        # The prompt's tokens (padding excluded) once per request, the output per generation.
        assert output.input_tokens == [token_count(llm, conversation), None, None]
        assert all(1 <= count <= 5 for count in output.output_tokens)
    assert token_count(llm, HELLO) == 13 and token_count(llm, SHORT) == 6


def test_left_padding_gives_the_same_greedy_text_as_alone(llm: TransformersLLM) -> None:
    assert llm._tokenizer.padding_side == "left"
    batched = llm.generate([HELLO, SHORT, WITH_SYSTEM], max_new_tokens=8, do_sample=False)
    alone = [llm.generate([c], max_new_tokens=8, do_sample=False)[0] for c in (HELLO, SHORT)]
    assert [list(batched[0]), list(batched[1])] == [list(alone[0]), list(alone[1])]
    assert batched[0] != batched[1]  # different prompts, different (random) continuations


def test_another_architecture_gpt2(tmp_path_factory: pytest.TempPathFactory) -> None:
    """GPT-2: learned absolute positions (left padding must shift them) and a base model
    under another attribute name."""
    directory = build_tiny_model(tmp_path_factory.mktemp("tiny-gpt2"), arch="gpt2")
    llm = TransformersLLM(model=str(directory))
    llm.load()
    batched = llm.generate([HELLO, SHORT], max_new_tokens=6, do_sample=False)
    [alone] = llm.generate([SHORT], max_new_tokens=6, do_sample=False)
    assert list(batched[1]) == list(alone)
    states = llm.get_last_hidden_state([HELLO, SHORT])
    assert [s.shape for s in states] == [(13, 128), (6, 128)]
    np.testing.assert_allclose(states[1], llm.get_last_hidden_state([SHORT])[0], atol=1e-5)


def test_greedy_num_generations_are_copies(llm: TransformersLLM) -> None:
    [output] = llm.generate([HELLO], num_generations=3, max_new_tokens=4, do_sample=False)
    assert len(output) == 3 and output[0] == output[1] == output[2]
    # One sequence was generated: its tokens are counted once.
    assert output.output_tokens[1:] == [None, None] and output.output_tokens[0] == 4


def test_output_tokens_stop_at_eos(llm: TransformersLLM) -> None:
    [first] = llm.generate([SHORT], max_new_tokens=6, do_sample=False)
    assert first.output_tokens == [6]  # a random model never says EOS by chance here
    first_token = llm._tokenizer(first[0], add_special_tokens=False).input_ids[0]
    config = llm._model.generation_config
    original = config.eos_token_id
    config.eos_token_id = [original, first_token]  # like models with several stop tokens
    try:
        [stopped] = llm.generate([SHORT, HELLO], max_new_tokens=6, do_sample=False)[:1]
    finally:
        config.eos_token_id = original
    assert stopped.output_tokens == [1]
    assert stopped == [llm._tokenizer.decode([first_token])]


def test_generation_kwargs_reach_model_generate(
    llm: TransformersLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict = {}
    original = llm._model.generate

    def spy(**kwargs):
        seen.update(kwargs)
        return original(**kwargs)

    monkeypatch.setattr(llm._model, "generate", spy)
    llm.generate(
        [SHORT],
        num_generations=2,
        max_new_tokens=3,
        temperature=0.7,
        repetition_penalty=1.3,
        top_p=0.9,
        top_k=5,
    )
    assert {k: seen[k] for k in ("max_new_tokens", "temperature", "top_p", "top_k")} == {
        "max_new_tokens": 3,
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 5,
    }
    assert seen["num_return_sequences"] == 2 and seen["do_sample"] is True
    assert seen["repetition_penalty"] == 1.3
    assert seen["attention_mask"].shape == seen["input_ids"].shape


def test_usage_is_accumulated(model_dir: Path) -> None:
    llm = TransformersLLM(model=str(model_dir))
    llm.load()
    outputs = llm.generate_outputs([HELLO, SHORT], num_generations=2, max_new_tokens=3)
    usage = llm.usage
    assert usage.requests == 2
    assert usage.input_tokens == token_count(llm, HELLO) + token_count(llm, SHORT)
    assert usage.output_tokens == sum(sum(o.output_tokens) for o in outputs)


def test_empty_batch(llm: TransformersLLM) -> None:
    assert llm.generate([]) == []
    assert llm.get_last_hidden_state([]) == []


def test_concurrent_batches_are_serialized(
    llm: TransformersLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine may hand a local LLM two batches at once (two worker threads): the model
    and its fast tokenizer must still see one call at a time."""
    active, most = [0], [0]
    original = llm._model.generate

    def slow_generate(**kwargs):
        active[0] += 1
        most[0] = max(most[0], active[0])
        time.sleep(0.2)  # long enough for the other thread to arrive
        try:
            return original(**kwargs)
        finally:
            active[0] -= 1

    monkeypatch.setattr(llm._model, "generate", slow_generate)

    async def both():
        return await asyncio.gather(
            llm.agenerate_outputs([HELLO, SHORT], 1, max_new_tokens=4, do_sample=False),
            llm.agenerate_outputs([SHORT, HELLO], 1, max_new_tokens=4, do_sample=False),
        )

    first, second = asyncio.run(both())
    assert most[0] == 1
    assert [list(g) for g in first] == [list(g) for g in reversed(second)]
    assert all(g.errors == [None] for g in first + second)


# -- hidden states and GenerateEmbeddings -----------------------------------------------


def test_last_hidden_state_one_array_per_input_without_padding(llm: TransformersLLM) -> None:
    states = llm.get_last_hidden_state([HELLO, SHORT])
    assert [state.shape for state in states] == [
        (token_count(llm, HELLO), 128),
        (token_count(llm, SHORT), 128),
    ]
    assert all(isinstance(s, np.ndarray) and s.dtype == np.float32 for s in states)
    [alone] = llm.get_last_hidden_state([SHORT])
    np.testing.assert_allclose(states[1], alone, atol=1e-5)
    # distilabel's plural name works too.
    np.testing.assert_allclose(llm.get_last_hidden_states([SHORT])[0], alone, atol=1e-5)


def test_generate_embeddings_in_a_pipeline(
    llm: TransformersLLM, model_dir: Path, tmp_path: Path
) -> None:
    texts = ["hello world", "what is the capital of france", "yes"]
    with Pipeline(name="tiny-embeddings", cache_dir=tmp_path) as pipeline:
        data = LoadDataFromDicts(data=[{"text": text} for text in texts], batch_size=2)
        embed = GenerateEmbeddings(llm=TransformersLLM(model=str(model_dir)), input_batch_size=3)
        data >> embed
    distiset = pipeline.run(use_cache=False)
    rows = distiset["default"]["train"].to_list()
    assert [row["text"] for row in rows] == texts
    expected = llm.get_last_hidden_state([[{"role": "user", "content": t}] for t in texts])
    for row, state in zip(rows, expected):
        assert row["model_name"] == llm.model_name
        np.testing.assert_allclose(row["embedding"], state[-1], atol=1e-5)


def test_text_generation_in_a_pipeline(model_dir: Path, tmp_path: Path) -> None:
    llm = TransformersLLM(model=str(model_dir), generation_kwargs={"max_new_tokens": 2})
    with Pipeline(name="tiny-generation", cache_dir=tmp_path) as pipeline:
        data = LoadDataFromDicts(
            data=[{"instruction": word} for word in ("hello", "yes", "no", "paris")]
        )
        generate = TextGeneration(llm=llm, input_batch_size=4)
        data >> generate
    distiset = pipeline.run(
        params={
            generate.name: {
                "num_generations": 2,
                "llm": {"generation_kwargs": {"do_sample": False, "max_new_tokens": 3}},
            }
        },
        use_cache=False,
    )
    rows = distiset["default"]["train"].to_list()
    assert len(rows) == 8
    assert all(isinstance(row["generation"], str) for row in rows)
    statistics = [row["potstill_metadata"][f"statistics_{generate.name}"] for row in rows]
    assert [s["output_tokens"] for s in statistics] == [3, None] * 4
    assert statistics[0]["input_tokens"] == 6  # <s> user hello </s> <s> assistant


def test_a_task_gets_whole_batches_off_the_event_loop(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, bool]] = []
    original = TransformersLLM.generate

    def on_event_loop() -> bool:
        try:
            asyncio.get_running_loop()
            return True
        except RuntimeError:
            return False

    @functools.wraps(original)
    def spy(self, inputs, *args, **kwargs):
        calls.append((len(inputs), on_event_loop()))
        return original(self, inputs, *args, **kwargs)

    monkeypatch.setattr(TransformersLLM, "generate", spy)
    llm = TransformersLLM(model=str(model_dir), generation_kwargs={"max_new_tokens": 1})
    with Pipeline(name="tiny-batches", cache_dir=tmp_path) as pipeline:
        words = ["one", "two", "three", "four", "five", "six", "seven"]
        data = LoadDataFromDicts(data=[{"instruction": w} for w in words], batch_size=2)
        generate = TextGeneration(llm=llm, input_batch_size=4)
        data >> generate
    distiset = pipeline.run(use_cache=False)
    assert len(distiset["default"]["train"]) == 7
    assert [size for size, _ in calls] == [4, 3]
    assert not any(on_loop for _, on_loop in calls)  # in a worker thread


# -- configuration, loading, serialization ----------------------------------------------


def test_generation_kwargs_are_runtime_parameters() -> None:
    names = TransformersLLM(model="m").runtime_parameters_names["generation_kwargs"]
    assert names == dict.fromkeys(
        [
            "max_new_tokens",
            "temperature",
            "repetition_penalty",
            "top_p",
            "top_k",
            "do_sample",
        ],
        True,
    )
    info = {
        item["name"]: item
        for item in TransformersLLM(model="m").get_runtime_parameters_info()
        if item["name"] == "generation_kwargs"
    }["generation_kwargs"]["keys"]
    assert all(key.get("description") for key in info)


def test_bad_generation_kwargs_fail_early() -> None:
    with pytest.raises(ValidationError, match="Did you mean 'max_new_tokens'"):
        TransformersLLM(model="m", generation_kwargs={"max_new_token": 3})
    with pytest.raises(ValidationError, match="do_sample"):
        TransformersLLM(model="m", generation_kwargs={"do_sample": "perhaps"})


def test_generate_validates_its_arguments(llm: TransformersLLM) -> None:
    with pytest.raises(ValidationError, match="num_generations"):
        llm.generate([SHORT], num_generations=0)
    with pytest.raises(ValidationError, match="max_new_tokens"):
        llm.generate([SHORT], max_new_tokens="many")


def test_fields_defaults_and_validation() -> None:
    llm = TransformersLLM(model="org/model")
    assert (llm.revision, llm.torch_dtype, llm.trust_remote_code, llm.use_fast) == (
        "main",
        "auto",
        False,
        True,
    )
    assert llm.model_name == "org/model"
    assert (llm.device, llm.device_map, llm.tokenizer, llm.chat_template) == (None,) * 4
    assert TransformersLLM(model="m", device=0).device == 0
    with pytest.raises(ValidationError):
        TransformersLLM(model="m", unknown_field=1)
    with pytest.raises(ValidationError):
        TransformersLLM(model="m", cuda_devices="all")


def test_generate_before_load_is_a_clear_error(model_dir: Path) -> None:
    llm = TransformersLLM(model=str(model_dir))
    with pytest.raises(LLMNotLoadedError, match="load"):
        llm.generate([SHORT])
    with pytest.raises(LLMNotLoadedError, match="load"):
        llm.get_last_hidden_state([SHORT])


def test_unload_frees_the_model(model_dir: Path) -> None:
    llm = TransformersLLM(model=str(model_dir))
    llm.load()
    first = llm._model
    llm.load()  # loading again replaces the model
    assert llm._model is not None and llm._model is not first
    llm.unload()
    assert llm._model is None and not llm.is_loaded
    with pytest.raises(LLMNotLoadedError):
        llm.generate([SHORT])


def test_loads_a_repo_id_from_the_hub_cache_offline(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`install_in_hub_cache` (what the docs tests use for `test: tiny-hf-model`) writes the
    layout huggingface_hub downloads to: its cache scan sees one clean repo, and `model`
    given as the repo id loads from it with the Hub off."""
    from huggingface_hub import constants, scan_cache_dir

    repo_id = "my-org/tiny-chat"
    snapshot = install_in_hub_cache(model_dir, tmp_path / "hub", repo_id)
    report = scan_cache_dir(tmp_path / "hub")
    assert report.warnings == []
    [repo] = report.repos
    assert (repo.repo_id, repo.repo_type, set(repo.refs)) == (repo_id, "model", {"main"})
    [revision] = repo.revisions
    assert revision.snapshot_path == snapshot and repo.refs["main"] == revision
    assert {file.file_name for file in revision.files} >= {"config.json", "model.safetensors"}
    assert (snapshot / "config.json").is_symlink()  # pointers to blobs, as downloads make

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    llm = TransformersLLM(model=repo_id)
    llm.load()
    assert llm.prepare_input(SHORT) == "<s>user yes</s><s>assistant "  # the tiny template
    [output] = llm.generate([SHORT], max_new_tokens=3, do_sample=False)
    assert output.output_tokens == [3]
    with pytest.raises(OSError, match="find them in the cached files"):
        TransformersLLM(model="my-org/absent").load()  # not cached, and no download


def test_torch_dtype_and_device(model_dir: Path) -> None:
    llm = TransformersLLM(model=str(model_dir), torch_dtype="bfloat16", device=-1)
    llm.load()
    assert llm._model.dtype == torch.bfloat16 and llm._model.device.type == "cpu"
    [[text]] = llm.generate([SHORT], max_new_tokens=2, do_sample=False)
    assert isinstance(text, str)
    assert llm.get_last_hidden_state([SHORT])[0].dtype == np.float32


def test_bad_torch_dtype_fails_at_load(model_dir: Path) -> None:
    llm = TransformersLLM(model=str(model_dir), torch_dtype="float17")
    with pytest.raises(PotstillUserError, match="float17"):
        llm.load()
    assert not llm.is_loaded
    assert llm._tokenizer is None, "what the failed load acquired is released"


def test_cuda_devices_without_cuda_is_a_clear_error(model_dir: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is available here")
    llm = TransformersLLM(model=str(model_dir), cuda_devices=[0])
    with pytest.raises(PotstillUserError, match="no CUDA device"):
        llm.load()


def test_auto_placement_spreads_models_over_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """The placement decision only (no GPU here): each model goes to a GPU no other holds."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    first, second, third = (TransformersLLM(model="m") for _ in range(3))
    assert [llm._placement()[0] for llm in (first, second)] == ["cuda:0", "cuda:1"]
    first._release()  # GPU 0 is free again
    assert third._placement() == ("cuda:0", {})
    second._release()
    third._release()
    assert TransformersLLM(model="m", cuda_devices=[1])._placement() == ("cuda:1", {})
    assert TransformersLLM(model="m", device=0)._placement() == ("cuda:0", {})
    assert TransformersLLM(model="m", device_map="auto")._placement() == (
        None,
        {"device_map": "auto"},
    )


def test_device_map(model_dir: Path) -> None:
    llm = TransformersLLM(model=str(model_dir), device_map="auto")
    if importlib.util.find_spec("accelerate") is None:
        with pytest.raises(ImportError, match=r"`accelerate`.*potstill\[transformers\]"):
            llm.load()
        return
    llm.load()
    assert llm._model.device.type == "cpu"
    [[text]] = llm.generate([SHORT], max_new_tokens=2, do_sample=False)
    assert isinstance(text, str)


def test_model_kwargs_reach_from_pretrained(model_dir: Path) -> None:
    llm = TransformersLLM(model=str(model_dir), model_kwargs={"attn_implementation": "eager"})
    llm.load()
    assert llm._model.config._attn_implementation == "eager"


def test_token_defaults_to_hf_token_and_stays_secret(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    llm = TransformersLLM(model=str(model_dir))
    assert llm.token is not None and llm.token.get_secret_value() == "hf_secret_value"
    with caplog.at_level(logging.DEBUG):
        llm.load()
        llm.generate([SHORT], max_new_tokens=1)
    assert "hf_secret_value" not in repr(llm)
    assert "hf_secret_value" not in str(llm.dump())
    assert "hf_secret_value" not in caplog.text


def test_dump_round_trip(model_dir: Path) -> None:
    llm = TransformersLLM(
        model=str(model_dir),
        torch_dtype="float32",
        chat_template=CHATML_TEMPLATE,
        model_kwargs={"attn_implementation": "eager"},
        generation_kwargs={"max_new_tokens": 7},
    )
    dump = llm.dump()
    assert dump["type_info"] == {
        "module": "potstill.llms.huggingface.transformers",
        "name": "TransformersLLM",
    }
    assert "token" not in dump
    again = LLM.from_dict(dump)
    assert isinstance(again, TransformersLLM) and again.dump() == dump


def test_missing_transformers_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ImportError, match=r"pip install 'potstill\[transformers\]'"):
        TransformersLLM(model="m").load()


def test_the_tiny_template_is_not_chatml() -> None:
    assert TINY_CHAT_TEMPLATE != CHATML_TEMPLATE
