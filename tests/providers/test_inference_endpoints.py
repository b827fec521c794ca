"""InferenceEndpointsLLM: its pure request building and answer parsing, and through the real
`huggingface_hub.AsyncInferenceClient` against the loopback TGI server (`<server>/tgi`): the
chat-completion route, and the text-generation route with a chat-template tokenizer built
on the spot (nothing is downloaded). What every hosted provider shares is in
`test_contract.py`."""

from __future__ import annotations

import logging
from pathlib import Path

import huggingface_hub
import pytest
from huggingface_hub import TextGenerationOutput, constants
from tests.fake_server import FakeServer
from tests.providers.cases import hf_hub_for_loopback
from tests.providers.contract import (
    MADRID,
    SPAIN,
    chat,
    loaded,
    multi_turn,
    received,
)

from potstill.llms import InferenceEndpointsLLM
from potstill.llms.huggingface.inference_endpoints import (
    build_chat_request,
    build_text_generation_request,
    parse_text_generation,
)

PROVIDER = "tgi"
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@pytest.fixture(autouse=True)
def _no_saved_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No token saved by `hf auth login` leaks in from the machine running the tests."""
    hf_hub_for_loopback(monkeypatch, tmp_path)


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny word-level tokenizer with a chat template, saved to a local directory."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordLevel(vocab={"[UNK]": 0}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]")
    fast.chat_template = CHAT_TEMPLATE
    path = tmp_path_factory.mktemp("tokenizer")
    fast.save_pretrained(path)
    return str(path)


def make(server: FakeServer, **kwargs) -> InferenceEndpointsLLM:
    kwargs.setdefault("api_key", "test-key")
    return InferenceEndpointsLLM(base_url=f"{server.url}/tgi", **kwargs)


# -- request building and answer parsing (no server) ----------------------------------------------

KWARGS = {
    "max_new_tokens": 64,
    "stop_sequences": ["\nUser:"],
    "seed": 7,
    "logprobs": False,
    "top_k": None,
    "do_sample": True,
}


def test_build_chat_request_leaves_the_text_generation_kwargs_out() -> None:
    request = build_chat_request(chat(SPAIN), "tgi", **KWARGS)

    assert request == {
        "messages": chat(SPAIN),
        "model": "tgi",
        "max_tokens": 64,
        "stop": ["\nUser:"],
        "seed": 7,
        "logprobs": False,
    }
    assert "model" not in build_chat_request(chat(SPAIN), None, **KWARGS)


def test_build_text_generation_request_leaves_the_chat_kwargs_out() -> None:
    request = build_text_generation_request("<|user|>\nHi\n", **KWARGS)

    assert request == {
        "prompt": "<|user|>\nHi\n",
        "details": True,
        "max_new_tokens": 64,
        "stop": ["\nUser:"],
        "seed": 7,
        "top_k": None,
        "do_sample": True,
    }


def test_parse_text_generation_reads_the_details() -> None:
    output = TextGenerationOutput.parse_obj_as_instance(
        {
            "generated_text": MADRID,
            "details": {"finish_reason": "eos_token", "generated_tokens": 6, "tokens": []},
        }
    )
    empty = TextGenerationOutput.parse_obj_as_instance(
        {"generated_text": "", "details": {"finish_reason": "length", "generated_tokens": 0}}
    )

    generations = parse_text_generation(output, input_tokens=9)

    assert generations == [MADRID]
    assert (generations.input_tokens, generations.output_tokens) == ([9], [6])
    assert parse_text_generation(empty, 9).errors == ["empty answer (finish_reason=length)"]


# -- the wire --------------------------------------------------------------------------------------


def test_chat_completion_route_gets_messages_and_kwargs(fake_server: FakeServer) -> None:
    llm = loaded(make(fake_server))
    conversation = multi_turn()

    outputs = llm.generate(
        [conversation],
        max_new_tokens=64,
        frequency_penalty=0.1,
        presence_penalty=0.2,
        seed=7,
        stop_sequences="\nUser:",
        temperature=0.3,
        top_p=0.9,
    )

    assert outputs == [[MADRID]]
    (request,) = fake_server.requests
    assert request.path == "/tgi/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer test-key"
    body = dict(request.body)
    assert body.pop("stream") is False
    assert body.pop("logprobs") is False
    assert body == {
        "model": "tgi",
        "messages": conversation,
        "max_tokens": 64,
        "frequency_penalty": 0.1,
        "presence_penalty": 0.2,
        "seed": 7,
        "stop": ["\nUser:"],
        "temperature": 0.3,
        "top_p": 0.9,
    }
    assert outputs[0].input_tokens == [2 + 1 + 1 + 5]
    assert outputs[0].output_tokens == [6]


def test_each_request_gets_a_random_seed_unless_one_is_given(fake_server: FakeServer) -> None:
    llm = loaded(make(fake_server))

    llm.generate([chat(SPAIN)], num_generations=4)
    llm.generate([chat("hello")], num_generations=3, seed=11)

    random_seeds = [request.body["seed"] for request in received(fake_server, PROVIDER, "Spain")]
    fixed_seeds = [request.body["seed"] for request in received(fake_server, PROVIDER, "hello")]
    assert len(set(random_seeds)) == 4
    assert all(0 <= seed < 2**31 for seed in random_seeds)
    assert fixed_seeds == [11, 11, 11]


def test_logprobs_come_back(fake_server: FakeServer) -> None:
    llm = loaded(make(fake_server))

    (output,) = llm.generate([chat(SPAIN)], logprobs=True, top_logprobs=2)

    assert fake_server.requests[0].body["top_logprobs"] == 2
    tokens = output.logprobs[0]
    assert "".join(item["token"] for item in tokens) == MADRID
    assert all(len(item["top_logprobs"]) == 2 for item in tokens)


def test_too_many_stop_sequences_and_ignored_kwargs_warn(
    fake_server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    llm = loaded(make(fake_server))
    caplog.set_level(logging.WARNING)

    outputs = llm.generate(
        [chat(SPAIN)], stop_sequences=["1", "2", "3", "4", "5"], top_k=5, watermark=True
    )

    assert outputs == [[MADRID]]
    body = fake_server.requests[0].body
    assert body["stop"] == ["1", "2", "3", "4"]
    assert "top_k" not in body and "watermark" not in body
    assert "first 4 of 5" in caplog.text
    assert "`top_k` is ignored" in caplog.text
    assert "`watermark` is ignored" in caplog.text


def test_text_generation_route_with_a_tokenizer(
    fake_server: FakeServer, tokenizer_dir: str
) -> None:
    llm = loaded(make(fake_server, tokenizer_id=tokenizer_dir, model_display_name="tiny-model"))
    conversation = chat(SPAIN, system="Be brief.")
    prompt = f"<|system|>\nBe brief.\n<|user|>\n{SPAIN}\n<|assistant|>\n"

    outputs = llm.generate(
        [conversation],
        max_new_tokens=4,
        frequency_penalty=0.1,
        repetition_penalty=1.2,
        temperature=0.3,
        do_sample=True,
        top_k=40,
        top_p=0.9,
        typical_p=0.95,
        stop_sequences=["\nUser:"],
        return_full_text=False,
        seed=7,
        watermark=True,
        top_n_tokens=2,
    )

    (request,) = fake_server.requests
    assert request.path == "/tgi"
    assert request.body["inputs"] == prompt
    assert request.body["parameters"] == {
        "details": True,
        "max_new_tokens": 4,
        "frequency_penalty": 0.1,
        "repetition_penalty": 1.2,
        "temperature": 0.3,
        "do_sample": True,
        "top_k": 40,
        "top_p": 0.9,
        "typical_p": 0.95,
        "stop": ["\nUser:"],
        "return_full_text": False,
        "seed": 7,
        "watermark": True,
        "top_n_tokens": 2,
    }
    assert outputs == [["Echo: <|system|> Be brief."]]  # the fake TGI echoes, cut to 4 tokens
    assert outputs[0].input_tokens == [len(prompt.split())]  # counted with the tokenizer
    assert outputs[0].output_tokens == [4]  # from the response's details
    assert llm.model_name == "tiny-model"


def test_text_generation_route_with_random_seeds(
    fake_server: FakeServer, tokenizer_dir: str
) -> None:
    llm = loaded(make(fake_server, tokenizer_id=tokenizer_dir))

    outputs = llm.generate([chat(SPAIN)], num_generations=3)

    assert len(outputs[0]) == 3 and all(outputs[0])
    seeds = {request.body["parameters"]["seed"] for request in received(fake_server, PROVIDER)}
    assert len(seeds) == 3


def test_hf_token_is_read_when_the_llm_is_created(
    fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "test-key")  # set after potstill was imported
    llm = loaded(InferenceEndpointsLLM(base_url=f"{fake_server.url}/tgi"))

    assert llm.generate([chat(SPAIN)]) == [[MADRID]]
    assert fake_server.requests[0].headers["authorization"] == "Bearer test-key"


def test_token_saved_by_hf_login_is_used(fake_server: FakeServer) -> None:
    token_path = Path(constants.HF_TOKEN_PATH)
    token_path.parent.mkdir(parents=True)
    token_path.write_text("test-key")
    llm = loaded(InferenceEndpointsLLM(base_url=f"{fake_server.url}/tgi"))

    assert llm.generate([chat(SPAIN)]) == [[MADRID]]
    assert "api_key" not in llm.dump()


def test_one_target_is_required() -> None:
    with pytest.raises(ValueError, match="one of `model_id`, `endpoint_name` or `base_url`"):
        InferenceEndpointsLLM(api_key="x")
    with pytest.raises(ValueError, match="not both"):
        InferenceEndpointsLLM(model_id="org/model", endpoint_name="my-endpoint", api_key="x")


def test_model_name_precedence(fake_server: FakeServer) -> None:
    url = f"{fake_server.url}/tgi"

    assert InferenceEndpointsLLM(base_url=url).model_name == url
    assert InferenceEndpointsLLM(model_id="org/model").model_name == "org/model"
    assert InferenceEndpointsLLM(endpoint_name="my-endpoint").model_name == "my-endpoint"
    named = InferenceEndpointsLLM(model_id="org/model", model_display_name="shown")
    assert named.model_name == "shown"


def test_model_id_targets_the_hub_model() -> None:
    llm = InferenceEndpointsLLM(model_id="org/model", api_key="test-key")
    llm.load()

    client = llm._create_client()
    assert client.model == "org/model"
    assert client.token == "test-key"
    llm.unload()


class _FakeEndpoint:
    """What `get_inference_endpoint` returns, for an endpoint paused until resumed."""

    def __init__(self, url: str) -> None:
        self.status, self.url, self.repository, self._url = "paused", None, "org/served-model", url
        self.calls: list[str] = []

    def resume(self) -> _FakeEndpoint:
        self.calls.append("resume")
        self.status = "initializing"
        return self

    def wait(self, timeout: int | None = None) -> _FakeEndpoint:
        self.calls.append(f"wait({timeout})")
        self.status, self.url = "running", self._url
        return self


def test_endpoint_name_is_resolved_and_resumed_at_load(
    fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = _FakeEndpoint(f"{fake_server.url}/tgi")
    lookups = []

    def fake_get(name, namespace=None, token=None):
        lookups.append((name, namespace, token))
        return endpoint

    monkeypatch.setattr(huggingface_hub, "get_inference_endpoint", fake_get)
    llm = loaded(
        InferenceEndpointsLLM(
            endpoint_name="my-endpoint", endpoint_namespace="org", api_key="test-key"
        )
    )

    assert llm.generate([chat(SPAIN)]) == [[MADRID]]
    assert lookups == [("my-endpoint", "org", "test-key")]
    assert endpoint.calls == ["resume", "wait(300)"]
    assert llm.model_name == "org/served-model"
    assert fake_server.requests[0].path == "/tgi/v1/chat/completions"
