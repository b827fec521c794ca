"""VertexAILLM: its pure request building and answer parsing, and its wire format through the
real `google-genai` SDK (`vertexai=True`) against the loopback `generateContent` endpoint,
with static test credentials (no ADC lookup, no network). What every hosted provider shares
is in `test_contract.py`."""

from __future__ import annotations

import json
from pathlib import Path

import google.auth
import google.oauth2.credentials
import pytest
from google.genai.types import GenerateContentResponse
from tests.fake_server import FakeServer
from tests.fake_server.vertex_generate import service_account_info
from tests.providers.cases import isolated_google_env
from tests.providers.contract import (
    MADRID,
    SPAIN,
    chat,
    loaded,
    multi_turn,
)

from potstill.errors import PotstillUserError
from potstill.llms import VertexAILLM
from potstill.llms.vertexai import build_request, parse_response

MODEL = "gemini-2.5-flash"
PATH = f"/v1beta1/projects/test-project/locations/us-central1/publishers/google/models/{MODEL}:generateContent"
# google-genai subclasses aiohttp's ClientSession, which aiohttp warns about.
pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolated_google_env(monkeypatch, tmp_path)


def credentials(token: str = "test-key") -> google.oauth2.credentials.Credentials:
    """Static OAuth credentials: the token is sent as it is, never refreshed."""
    return google.oauth2.credentials.Credentials(token=token)


def make(server: FakeServer, token: str = "test-key", **kwargs) -> VertexAILLM:
    kwargs.setdefault("model", MODEL)
    kwargs.setdefault("project", "test-project")
    kwargs.setdefault("location", "us-central1")
    return VertexAILLM(base_url=server.url, credentials=credentials(token), **kwargs)


# -- request building and answer parsing (no server) ----------------------------------------------


def test_build_request_maps_roles_and_sends_only_the_kwargs_that_are_set() -> None:
    request = build_request(
        MODEL,
        multi_turn(),
        temperature=0.3,
        top_k=None,
        safety_settings={"HARM_CATEGORY_HATE_SPEECH": "BLOCK_ONLY_HIGH"},
    )

    assert request == {
        "model": MODEL,
        "contents": [
            {"role": "user", "parts": [{"text": "Hi"}]},
            {"role": "model", "parts": [{"text": "Hello."}]},
            {"role": "user", "parts": [{"text": SPAIN}]},
        ],
        "config": {
            "system_instruction": "Be brief.",
            "candidate_count": 1,
            "temperature": 0.3,
            "safety_settings": [
                {"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_ONLY_HIGH"}
            ],
        },
    }


def test_build_request_refuses_an_unknown_role() -> None:
    with pytest.raises(ValueError, match="role 'tool'"):
        build_request(MODEL, [{"role": "tool", "content": "42"}])


def test_parse_response_leaves_the_thoughts_out() -> None:
    answer = GenerateContentResponse.model_validate(
        {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [{"text": "Let me think.", "thought": True}, {"text": MADRID}],
                    },
                    "finish_reason": "STOP",
                }
            ],
            "usage_metadata": {"prompt_token_count": 5, "candidates_token_count": 6},
        }
    )

    generations = parse_response(answer)

    assert generations == [MADRID]
    assert (generations.input_tokens, generations.output_tokens) == ([5], [6])


def test_parse_response_of_a_blocked_prompt_keeps_the_reason() -> None:
    answer = GenerateContentResponse.model_validate(
        {"candidates": [], "prompt_feedback": {"block_reason": "SAFETY"}}
    )

    generations = parse_response(answer)

    assert generations == [None]
    assert generations.errors == ["prompt blocked (block_reason=SAFETY)"]


# -- the wire --------------------------------------------------------------------------------------


def test_roles_are_mapped_and_kwargs_reach_the_api(fake_server: FakeServer) -> None:
    llm = loaded(make(fake_server))
    conversation = multi_turn()
    original = [dict(message) for message in conversation]
    tools = [{"function_declarations": [{"name": "lookup", "description": "Looks up."}]}]

    outputs = llm.generate(
        [conversation],
        temperature=0.3,
        top_p=0.9,
        top_k=40,
        max_output_tokens=64,
        stop_sequences=["\nUser:"],
        safety_settings={"HARM_CATEGORY_HATE_SPEECH": "BLOCK_ONLY_HIGH"},
        tools=tools,
    )

    assert outputs == [[MADRID]]
    assert conversation == original, "the input is not mutated"
    (request,) = fake_server.requests
    assert request.path == PATH
    assert request.headers["authorization"] == "Bearer test-key"
    body = request.body
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Hi"}]},
        {"role": "model", "parts": [{"text": "Hello."}]},
        {"role": "user", "parts": [{"text": SPAIN}]},
    ]
    assert body["systemInstruction"]["parts"] == [{"text": "Be brief."}]
    assert body["generationConfig"] == {
        "candidateCount": 1,
        "temperature": 0.3,
        "topP": 0.9,
        "topK": 40,
        "maxOutputTokens": 64,
        "stopSequences": ["\nUser:"],
    }
    assert body["safetySettings"] == [
        {"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_ONLY_HIGH"}
    ]
    assert body["tools"][0]["functionDeclarations"][0]["name"] == "lookup"
    assert outputs[0].input_tokens == [2 + 1 + 1 + 5]
    assert outputs[0].output_tokens == [6]


def test_model_role_and_safety_settings_list_are_accepted(fake_server: FakeServer) -> None:
    llm = loaded(make(fake_server))
    settings = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    conversation = [
        {"role": "user", "content": "Hi"},
        {"role": "model", "content": "Hello."},
        {"role": "user", "content": SPAIN},
    ]

    assert llm.generate([conversation], safety_settings=settings) == [[MADRID]]

    body = fake_server.requests[0].body
    assert [content["role"] for content in body["contents"]] == ["user", "model", "user"]
    assert "systemInstruction" not in body
    assert body["safetySettings"] == settings
    assert body["generationConfig"] == {"candidateCount": 1}, "unset kwargs are not sent"


def test_unknown_role_fails_that_input_only(fake_server: FakeServer) -> None:
    llm = loaded(make(fake_server))

    outputs = llm.generate([[{"role": "tool", "content": "42"}], chat(SPAIN)])

    assert outputs == [[None], [MADRID]]
    assert "role 'tool'" in outputs[0].errors[0]


def test_max_output_tokens_limits_the_answer(fake_server: FakeServer) -> None:
    llm = loaded(make(fake_server))

    assert llm.generate([chat(SPAIN)], max_output_tokens=2) == [["The capital"]]


def test_default_credentials_and_project_are_resolved_at_load(
    fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def fake_default(scopes=None, **kwargs):
        calls.append(scopes)
        return credentials(), "adc-project"

    monkeypatch.setattr(google.auth, "default", fake_default)
    llm = loaded(VertexAILLM(model=MODEL, location="us-central1", base_url=fake_server.url))

    assert llm.generate([chat(SPAIN)]) == [[MADRID]]
    assert calls == [["https://www.googleapis.com/auth/cloud-platform"]]
    assert fake_server.requests[0].path == PATH.replace("test-project", "adc-project")


def test_project_and_location_from_env(
    fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "test-project")
    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", "us-central1")
    llm = loaded(VertexAILLM(model=MODEL, base_url=fake_server.url, credentials=credentials()))

    assert llm.generate([chat(SPAIN)]) == [[MADRID]]
    assert fake_server.requests[0].path == PATH


def test_credentials_file_and_the_sdk_base_url_variable(
    fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    """No credentials, project or base URL given: `GOOGLE_APPLICATION_CREDENTIALS` (a
    service-account key whose token server is the loopback one) and google-genai's
    `GOOGLE_VERTEX_BASE_URL` are used, as the docs' examples rely on."""
    adc = tmp_path / "key.json"
    adc.write_text(json.dumps(service_account_info(fake_server.url, project="test-project")))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    monkeypatch.setenv("GOOGLE_VERTEX_BASE_URL", fake_server.url)
    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", "us-central1")
    llm = loaded(VertexAILLM(model=MODEL))  # the project comes from the key file

    assert llm.generate([chat(SPAIN)]) == [[MADRID]]
    token, generate = fake_server.requests
    assert token.path == "/token"
    assert generate.path == PATH
    assert generate.headers["authorization"] == "Bearer test-key"


def test_missing_credentials_fail_at_load(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    llm = VertexAILLM(model=MODEL, project="test-project")

    with pytest.raises(PotstillUserError, match="GOOGLE_APPLICATION_CREDENTIALS"):
        llm.load()
    assert not llm.is_loaded


def test_missing_project_fails_at_load() -> None:
    llm = VertexAILLM(model=MODEL, credentials=credentials())

    with pytest.raises(PotstillUserError, match="GOOGLE_CLOUD_PROJECT"):
        llm.load()


def test_any_model_name_is_accepted(fake_server: FakeServer) -> None:
    # distilabel raised NotImplementedError for names without "gemini"
    llm = loaded(make(fake_server, model="my-tuned-model"))

    assert llm.generate([chat(SPAIN)]) == [[MADRID]]
    assert fake_server.requests[0].path.endswith("/models/my-tuned-model:generateContent")


def test_credentials_are_not_dumped(fake_server: FakeServer) -> None:
    dump = make(fake_server).dump()

    assert "credentials" not in dump
    assert dump["project"] == "test-project"
    assert dump["location"] == "us-central1"
