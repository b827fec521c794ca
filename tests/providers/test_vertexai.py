"""VertexAILLM through the real `google-genai` SDK (`vertexai=True`) against the loopback
`generateContent` endpoint, with static test credentials (no ADC lookup, no network)."""

from __future__ import annotations

import json

import google.auth
import google.oauth2.credentials
import pytest
from tests.fake_server import FakeServer
from tests.fake_server.vertex_generate import service_account_info
from tests.providers.contract import (
    MADRID,
    SPAIN,
    bearer,
    chat,
    check_empty_answer,
    check_failures_are_isolated,
    check_num_generations,
    check_pipeline,
    check_retry_succeeds,
    check_secret_never_shown,
    loaded,
    multi_turn,
    received,
)

from potstill.errors import PotstillUserError
from potstill.llms import VertexAILLM

PROVIDER = "vertexai"
MODEL = "gemini-2.5-flash"
PATH = f"/v1beta1/projects/test-project/locations/us-central1/publishers/google/models/{MODEL}:generateContent"
# google-genai subclasses aiohttp's ClientSession, which aiohttp warns about.
pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession")
_GOOGLE_ENV = (
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_CLOUD_LOCATION",
    "GOOGLE_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_GENAI_USE_ENTERPRISE",
    "GOOGLE_VERTEX_BASE_URL",
    "GOOGLE_APPLICATION_CREDENTIALS",
)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path):
    for name in _GOOGLE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))  # no gcloud ADC file
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # never probe the metadata server


def credentials(token: str = "test-key") -> google.oauth2.credentials.Credentials:
    """Static OAuth credentials: the token is sent as it is, never refreshed."""
    return google.oauth2.credentials.Credentials(token=token)


def make(server: FakeServer, token: str = "test-key", **kwargs) -> VertexAILLM:
    kwargs.setdefault("model", MODEL)
    kwargs.setdefault("project", "test-project")
    kwargs.setdefault("location", "us-central1")
    return VertexAILLM(base_url=server.url, credentials=credentials(token), **kwargs)


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


def test_blocked_candidate_is_none_with_the_reason(fake_server: FakeServer) -> None:
    check_empty_answer(make(fake_server), "SAFETY")


def test_max_output_tokens_limits_the_answer(fake_server: FakeServer) -> None:
    llm = loaded(make(fake_server))

    assert llm.generate([chat(SPAIN)], max_output_tokens=2) == [["The capital"]]


def test_num_generations_sends_parallel_requests(fake_server: FakeServer) -> None:
    check_num_generations(make(fake_server), fake_server, PROVIDER)


def test_one_failed_request_only_fails_its_generation(fake_server: FakeServer) -> None:
    check_failures_are_isolated(make(fake_server), fake_server, PROVIDER)


def test_transient_error_is_retried(fake_server: FakeServer) -> None:
    check_retry_succeeds(make(fake_server), fake_server, PROVIDER)


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


def test_token_never_shown(fake_server: FakeServer, caplog: pytest.LogCaptureFixture) -> None:
    check_secret_never_shown(
        lambda token: make(fake_server, token=token),
        fake_server,
        caplog,
        bearer,
    )


def test_credentials_are_not_dumped(fake_server: FakeServer) -> None:
    dump = make(fake_server).dump()

    assert "credentials" not in dump
    assert dump["project"] == "test-project"
    assert dump["location"] == "us-central1"


def test_runs_in_text_generation_pipeline(fake_server: FakeServer) -> None:
    llm = make(fake_server)

    check_pipeline(llm, {"generation_kwargs": {"temperature": 0.2, "max_output_tokens": 50}})

    requests = received(fake_server, PROVIDER)
    assert len(requests) == 4
    for request in requests:
        assert request.body["generationConfig"]["temperature"] == 0.2
        assert request.body["generationConfig"]["maxOutputTokens"] == 50
        assert request.body["systemInstruction"]["parts"] == [{"text": "Be brief."}]
