"""OpenAILLM: its pure request building, and against the loopback server through the real
`openai` SDK: fields, generation kwargs on the wire, native n, usage, timeouts, retries and
secrets. What every hosted provider shares is in `test_contract.py`."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import openai
import pytest
from tests.fake_server import FakeServer

from potstill.llms import OpenAILLM
from potstill.llms.openai import build_raw_request, build_request
from potstill.llms.pricing import token_cost
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration
from potstill.steps.tasks.base import METADATA_COLUMN

SPAIN = "What's the capital of Spain?"
MADRID = "The capital of Spain is Madrid."


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def loaded(**kwargs: Any) -> OpenAILLM:
    llm = OpenAILLM(model="gpt-4o-mini", **kwargs)
    llm.load()
    return llm


# -- fields and env vars -------------------------------------------------------------------------


def test_defaults_without_env() -> None:
    llm = OpenAILLM(model="gpt-4")

    assert llm.model == llm.model_name == "gpt-4"
    assert llm.base_url == "https://api.openai.com/v1"
    assert llm.api_key is None
    assert llm.timeout == 120
    assert llm.max_retries == 6
    assert llm.max_concurrent_requests == 64
    assert llm.generation_kwargs == {}


def test_model_is_required() -> None:
    with pytest.raises(ValueError, match="model"):
        OpenAILLM()


def test_explicit_values_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")

    llm = OpenAILLM(model="gpt-4", base_url="http://127.0.0.1:8/v1", api_key="sk-explicit")

    assert llm.base_url == "http://127.0.0.1:8/v1"
    assert llm.api_key.get_secret_value() == "sk-explicit"


def test_api_key_and_base_url_as_runtime_parameters(fake_server: FakeServer) -> None:
    llm = OpenAILLM(model="gpt-4")

    llm.set_runtime_parameters({"api_key": "test-key", "base_url": fake_server.openai_base_url})
    llm.load()

    assert llm.generate(inputs=[chat(SPAIN)]) == [[MADRID]]


# -- request building (no server) ------------------------------------------------------------------


def test_build_request_sends_kwargs_under_the_apis_names() -> None:
    body = build_request(
        "gpt-4o-mini",
        chat(SPAIN),
        2,
        max_new_tokens=64,
        frequency_penalty=0.5,
        temperature=0.2,
        stop=None,
        response_format="json",
        seed=None,
        logprobs=False,
        top_logprobs=None,
        extra_body={"top_k": 40},
    )

    assert body == {
        "messages": chat(SPAIN),
        "model": "gpt-4o-mini",
        "n": 2,
        "max_tokens": 64,
        "frequency_penalty": 0.5,
        "temperature": 0.2,
        "response_format": {"type": "json_object"},
        "top_k": 40,
    }


def test_build_request_sends_logprobs_only_when_asked() -> None:
    body = build_request("m", chat(SPAIN), logprobs=True, top_logprobs=2)

    assert (body["logprobs"], body["top_logprobs"], body["n"]) == (True, 2, 1)


def test_build_raw_request_drops_the_chat_only_fields() -> None:
    body = build_request(
        "m", chat(SPAIN), max_new_tokens=8, response_format="json", logprobs=True, top_logprobs=1
    )

    raw = build_raw_request(body, "<|im_start|>user\n")

    assert raw == {"model": "m", "n": 1, "max_tokens": 8, "prompt": "<|im_start|>user\n"}
    assert "messages" in body, "the chat body is left as it was"


# -- the wire ----------------------------------------------------------------------------------------


def test_seed_example_request(openai_env: FakeServer) -> None:
    llm = loaded()

    assert llm.generate(inputs=[chat(SPAIN)]) == [[MADRID]]

    [request] = openai_env.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer test-key"
    assert request.body["model"] == "gpt-4o-mini"
    assert request.body["messages"] == chat(SPAIN)
    assert request.body["n"] == 1


def test_default_generation_kwargs_on_the_wire(openai_env: FakeServer) -> None:
    loaded().generate(inputs=[chat("hello")])

    body = openai_env.requests[0].body
    assert body["max_tokens"] == 128
    assert body["temperature"] == 1.0
    assert body["top_p"] == 1.0
    assert body["frequency_penalty"] == 0.0
    assert body["presence_penalty"] == 0.0
    for absent in ("stop", "response_format", "seed", "logprobs", "top_logprobs", "max_new_tokens"):
        assert absent not in body


def test_each_generation_kwarg_arrives_under_its_openai_name(openai_env: FakeServer) -> None:
    llm = loaded()

    llm.generate(
        inputs=[chat("hello")],
        max_new_tokens=64,
        frequency_penalty=0.5,
        presence_penalty=-0.5,
        temperature=0.2,
        top_p=0.9,
        stop=["\n\n", "END"],
        seed=1234,
        logprobs=True,
        top_logprobs=2,
        extra_body={"repetition_penalty": 1.1},
    )

    body = openai_env.requests[0].body
    assert body["max_tokens"] == 64
    assert "max_new_tokens" not in body
    assert body["frequency_penalty"] == 0.5
    assert body["presence_penalty"] == -0.5
    assert body["temperature"] == 0.2
    assert body["top_p"] == 0.9
    assert body["stop"] == ["\n\n", "END"]
    assert body["seed"] == 1234
    assert body["logprobs"] is True
    assert body["top_logprobs"] == 2
    assert body["repetition_penalty"] == 1.1  # extra_body is merged into the JSON body
    assert "extra_body" not in body


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("json", {"type": "json_object"}),
        ("json_object", {"type": "json_object"}),
        ("text", {"type": "text"}),
        (
            {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}},
            {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}},
        ),
    ],
)
def test_response_format(openai_env: FakeServer, given: Any, sent: Any) -> None:
    outputs = loaded().generate(inputs=[chat(SPAIN)], response_format=given)

    assert openai_env.requests[0].body["response_format"] == sent
    if given in ("json", "json_object"):
        assert json.loads(outputs[0][0]) == {"answer": MADRID}


def test_stop_and_max_new_tokens_take_effect(openai_env: FakeServer) -> None:
    llm = loaded()

    assert llm.generate(inputs=[chat(SPAIN)], stop=" is") == [["The capital of Spain"]]
    assert llm.generate(inputs=[chat(SPAIN)], max_new_tokens=3) == [["The capital of"]]


def test_logprobs_are_kept_per_generation(openai_env: FakeServer) -> None:
    [generations] = loaded().generate(inputs=[chat(SPAIN)], logprobs=True, top_logprobs=1)

    [logprobs] = generations.logprobs
    assert "".join(item["token"] for item in logprobs) == MADRID
    assert all(item["logprob"] < 0 and len(item["top_logprobs"]) == 1 for item in logprobs)


def test_messages_are_sent_unchanged_with_every_role(openai_env: FakeServer) -> None:
    conversation = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": SPAIN},
    ]
    original = json.loads(json.dumps(conversation))

    assert loaded().generate(inputs=[conversation]) == [[MADRID]]

    assert openai_env.requests[0].body["messages"] == original
    assert conversation == original  # not mutated


def test_native_n_for_num_generations(openai_env: FakeServer) -> None:
    outputs = loaded().generate(inputs=[chat(SPAIN), chat("hello")], num_generations=3)

    assert [len(o) for o in outputs] == [3, 3]
    assert outputs[0] == [MADRID, f"{MADRID} (sample 1)", f"{MADRID} (sample 2)"]
    assert len(openai_env.requests) == 2  # one request per input, not per generation
    assert {r.body["n"] for r in openai_env.requests} == {3}


def test_usage_is_recorded(openai_env: FakeServer) -> None:
    llm = loaded()

    outputs = llm.generate(inputs=[[{"role": "system", "content": "You are terse."}, *chat(SPAIN)]])

    assert outputs[0].input_tokens == [8]
    assert outputs[0].output_tokens == [6]
    assert (llm.usage.requests, llm.usage.input_tokens, llm.usage.output_tokens) == (1, 8, 6)


def test_empty_answer_is_none_with_a_reason(openai_env: FakeServer) -> None:
    [generations] = loaded().generate(inputs=[chat("[[empty]] hi")])

    assert generations == [None]
    assert "no content" in generations.errors[0]


# -- timeouts, failures, retries ------------------------------------------------------------------


def test_no_per_request_timeout_override(
    openai_env: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []
    original = openai.AsyncOpenAI.post

    async def spy(self: Any, path: str, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return await original(self, path, **kwargs)

    monkeypatch.setattr(openai.AsyncOpenAI, "post", spy)
    llm = loaded(timeout=77)

    assert llm.generate(inputs=[chat(SPAIN)]) == [[MADRID]]

    [kwargs] = calls
    assert "timeout" not in kwargs
    assert "timeout" not in (kwargs.get("options") or {})
    assert llm.client.timeout == 77  # the client's own timeout is the field


def test_the_timeout_field_bounds_a_slow_request(openai_env: FakeServer) -> None:
    llm = loaded(timeout=1, max_retries=0)

    started = time.monotonic()
    outputs = llm.generate(inputs=[chat("slow [[delay=3]]"), chat("quick [[delay=0.3]]")])
    elapsed = time.monotonic() - started

    assert outputs[0] == [None]
    assert "timeout" in outputs[0].errors[0].lower()
    assert outputs[1] == ["Echo: quick"]
    assert elapsed < 2.5  # cut by the 1 s client timeout, not the 3 s server delay


@pytest.mark.parametrize(
    "marker", ["[[status=500]]", "[[malformed]]", "[[drop]]", "[[status=400]]"]
)
def test_a_failed_request_gives_none_for_that_input_only(
    openai_env: FakeServer, marker: str
) -> None:
    llm = loaded(max_retries=0)

    outputs = llm.generate(inputs=[chat("hello"), chat(f"bad {marker}")], num_generations=2)

    assert outputs[0] == [
        "Hello! How can I help you today?",
        "Hello! How can I help you today? (sample 1)",
    ]
    assert outputs[1] == [None, None]
    assert outputs[1].errors[0]


def test_a_retry_succeeds(openai_env: FakeServer) -> None:
    llm = loaded(max_retries=2)

    outputs = llm.generate(inputs=[chat("[[fail_first=1 status=503]] flaky")])

    assert outputs == [["Echo: flaky"]]
    assert [r.status for r in openai_env.requests] == [503, 200]
    assert llm.usage.retries == 1
    assert llm.usage.failed_requests == 0


def test_a_client_error_is_not_retried(openai_env: FakeServer) -> None:
    llm = loaded(max_retries=3)

    outputs = llm.generate(inputs=[chat("[[status=400]] nope")])

    assert outputs == [[None]]
    assert len(openai_env.requests) == 1


# -- secrets -------------------------------------------------------------------------------------------

SECRET = "sk-live-do-not-leak-0987"


def test_key_never_in_dump_repr_or_str() -> None:
    llm = OpenAILLM(model="gpt-4", api_key=SECRET)

    assert SECRET not in json.dumps(llm.dump())
    assert SECRET not in repr(llm)
    assert SECRET not in str(llm)
    assert SECRET not in llm.model_dump_json()
    assert SECRET not in repr(TextGeneration(llm=llm))
    assert llm._secret() == SECRET  # still usable by the client


def test_default_headers_are_sent_but_never_dumped_or_shown(openai_env: FakeServer) -> None:
    llm = loaded(default_headers={"X-Gateway-Token": SECRET})

    assert llm.generate([chat(SPAIN)]) == [[MADRID]]
    assert openai_env.requests[0].headers["x-gateway-token"] == SECRET
    assert "default_headers" not in llm.dump()
    assert SECRET not in json.dumps(llm.dump())
    assert SECRET not in repr(llm)
    assert SECRET not in llm.model_dump_json()


def test_key_never_in_logs_or_errors_of_a_rejected_request(
    fake_server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    llm = loaded(api_key=SECRET, base_url=fake_server.openai_base_url, max_retries=0)

    with caplog.at_level(logging.DEBUG):
        outputs = llm.generate(inputs=[chat(SPAIN)])

    assert outputs == [[None]]
    assert "401" in outputs[0].errors[0]
    assert SECRET not in outputs[0].errors[0]
    assert caplog.records, "the failure is logged"
    assert SECRET not in caplog.text
    assert fake_server.requests[0].headers["authorization"] == f"Bearer {SECRET}"


def test_key_never_in_pipeline_files_or_metadata(
    openai_env: FakeServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    openai_env.configure(require_api_key=SECRET)
    with Pipeline(name="secret-pipeline") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": SPAIN}])
        load >> TextGeneration(llm=OpenAILLM(model="gpt-4"))

    distiset = pipeline.run()
    pipeline.save(tmp_path / "p.yaml", format="yaml")

    assert distiset["default"]["train"]["generation"] == [MADRID]
    assert SECRET not in (pipeline.cache_dir / "pipeline.yaml").read_text()
    assert SECRET not in (tmp_path / "p.yaml").read_text()
    assert SECRET not in json.dumps(distiset["default"]["train"][0][METADATA_COLUMN])


# -- end to end --------------------------------------------------------------------------------------


def test_in_text_generation_in_a_pipeline(openai_env: FakeServer) -> None:
    with Pipeline(name="openai-e2e") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": SPAIN}, {"instruction": "hello"}])
        generate = TextGeneration(llm=OpenAILLM(model="gpt-4"), system_prompt="Be brief.")
        load >> generate

    distiset = pipeline.run(
        params={
            generate.name: {
                "num_generations": 2,
                "llm": {"generation_kwargs": {"temperature": 0.3, "max_new_tokens": 20}},
            }
        }
    )

    train = distiset["default"]["train"]
    assert train["generation"] == [
        MADRID,
        f"{MADRID} (sample 1)",
        "Hello! How can I help you today?",
        "Hello! How can I help you today? (sample 1)",
    ]
    assert train["model_name"] == ["gpt-4"] * 4
    for request in openai_env.requests:
        assert request.body["n"] == 2
        assert request.body["temperature"] == 0.3
        assert request.body["max_tokens"] == 20
        assert request.body["messages"][0] == {"role": "system", "content": "Be brief."}
    stats = train[0][METADATA_COLUMN][f"statistics_{generate.name}"]
    cost = token_cost("gpt-4", "openai", input_tokens=2 + 5, output_tokens=6 + 8)
    assert stats == {"input_tokens": 2 + 5, "output_tokens": 6 + 8, "cost": pytest.approx(cost)}
