"""Vertex AI (Gemini) ``generateContent``, as ``google-genai`` calls it with ``vertexai=True``.

Routes:

* ``POST /{version}/projects/{project}/locations/{location}/publishers/{publisher}/models/{model}:generateContent``
* ``POST /{version}/publishers/{publisher}/models/{model}:generateContent`` (express mode)
* ``POST /token``: Google's OAuth 2.0 token endpoint (``https://oauth2.googleapis.com/token``)
  for credentials whose ``token_uri`` points here (a service-account key or an
  ``authorized_user`` file); it hands out the key the Vertex routes accept.

The key is the OAuth access token (``Authorization: Bearer``) or ``x-goog-api-key``.
Contents use the roles ``user`` and ``model``; the system prompt travels in
``systemInstruction``. ``[[empty]]`` gives a candidate blocked for safety (no content),
the way Vertex reports a blocked answer. ``generationConfig.responseMimeType``
``application/json`` with ``responseJsonSchema`` (or ``responseSchema``) gets JSON
matching the schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from .answers import answer_for, count_tokens
from .common import (
    BadRequest,
    add_provider,
    bearer_key,
    build_choices,
    limit_answer,
    prompt_tokens,
    user_text,
)
from .context import get_context
from .registry import ProviderSpec
from .state import DEFAULT_API_KEY, ServerState

PROVIDER = "vertexai"
ACTION = "generateContent"
ROLES = ("user", "model")
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def error_body(status: int, message: str) -> dict[str, Any]:
    """Build a Google API error body.

    Args:
        status: HTTP status.
        message: Human-readable message.

    Returns:
        ``{"error": {"code", "message", "status"}}``.
    """
    name = STATUS_NAMES.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
    return {"error": {"code": status, "message": message, "status": name}}


def api_key(request: web.Request) -> str | None:
    """Read the access token (bearer) or the ``x-goog-api-key`` header.

    Args:
        request: The request.

    Returns:
        The key, or None.
    """
    return bearer_key(request) or request.headers.get("x-goog-api-key") or None


def _parts_text(parts: Any) -> str:
    if not isinstance(parts, list):
        return ""
    return "\n".join(
        part["text"]
        for part in parts
        if isinstance(part, Mapping) and isinstance(part.get("text"), str)
    )


def _openai_messages(contents: Any) -> list[dict[str, Any]]:
    if not isinstance(contents, list):
        return []
    return [
        {
            "role": "user" if c.get("role") == "user" else "assistant",
            "content": _parts_text(c.get("parts")),
        }
        for c in contents
        if isinstance(c, Mapping)
    ]


def key_text(body: Any) -> str:
    """Return the text of the last user content, or ``""``.

    Args:
        body: The parsed JSON body.

    Returns:
        The text.
    """
    return user_text(body, "contents", _openai_messages)


def validate(body: Any) -> Mapping[str, Any]:
    """Validate a ``generateContent`` request like Vertex AI.

    Args:
        body: The parsed JSON body.

    Returns:
        The body.

    Raises:
        BadRequest: On a request the API rejects.
    """
    if not isinstance(body, Mapping):
        raise BadRequest("Invalid JSON payload: expected an object.")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise BadRequest("contents is not specified")
    for index, content in enumerate(contents):
        if not isinstance(content, Mapping) or content.get("role") not in ROLES:
            raise BadRequest(f"Please use a valid role: user, model. (contents[{index}].role)")
        if not isinstance(content.get("parts"), list) or not content["parts"]:
            raise BadRequest(f"contents[{index}].parts must not be empty")
    system = body.get("systemInstruction")
    if system is not None and (not isinstance(system, Mapping) or "parts" not in system):
        raise BadRequest("systemInstruction must be a Content with parts")
    config = body.get("generationConfig") or {}
    for name, (low, high) in {"temperature": (0.0, 2.0), "topP": (0.0, 1.0)}.items():
        value = config.get(name)
        if value is not None and not low <= value <= high:
            raise BadRequest(f"generationConfig.{name} must be in [{low}, {high}]")
    stop = config.get("stopSequences")
    if stop is not None and (not isinstance(stop, list) or len(stop) > 5):
        raise BadRequest("generationConfig.stopSequences accepts at most 5 sequences")
    count = config.get("candidateCount", 1)
    if not isinstance(count, int) or not 1 <= count <= 8:
        raise BadRequest("generationConfig.candidateCount must be in [1, 8]")
    if (config.get("responseJsonSchema") or config.get("responseSchema")) and config.get(
        "responseMimeType"
    ) != "application/json":
        raise BadRequest("responseSchema needs responseMimeType application/json")
    for setting in body.get("safetySettings") or []:
        if not isinstance(setting, Mapping) or not {"category", "threshold"} <= setting.keys():
            raise BadRequest("safetySettings entries need a category and a threshold")
    return body


def _candidate(body: Mapping[str, Any], index: int, empty: bool) -> tuple[dict[str, Any], int]:
    if empty:
        return {
            "index": index,
            "finishReason": "SAFETY",
            "safetyRatings": [
                {
                    "category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                    "probability": "HIGH",
                    "blocked": True,
                }
            ],
        }, 0
    config = body.get("generationConfig") or {}
    limit = config.get("maxOutputTokens")
    schema = config.get("responseJsonSchema") or config.get("responseSchema")
    json_mode = config.get("responseMimeType") == "application/json"
    text, _, truncated = limit_answer(
        answer_for(
            _openai_messages(body["contents"]),
            index,
            json_mode=json_mode,
            json_schema=schema if json_mode and isinstance(schema, Mapping) else None,
        ),
        config.get("stopSequences") or [],
        limit if isinstance(limit, int) else None,
    )
    finish = "MAX_TOKENS" if truncated else "STOP"
    return {
        "index": index,
        "content": {"role": "model", "parts": [{"text": text}]},
        "finishReason": finish,
    }, count_tokens(text)


def build_response(body: Mapping[str, Any], model: str, empty: bool) -> dict[str, Any]:
    """Build the ``GenerateContentResponse`` body.

    Args:
        body: The validated request.
        model: The model named in the URL.
        empty: Block every candidate.

    Returns:
        The response body.
    """
    count = (body.get("generationConfig") or {}).get("candidateCount", 1)
    candidates, output_tokens = build_choices(count, lambda index: _candidate(body, index, empty))
    prompt = prompt_tokens(_openai_messages(body["contents"]))
    prompt += count_tokens(_parts_text((body.get("systemInstruction") or {}).get("parts")))
    return {
        "candidates": candidates,
        "usageMetadata": {
            "promptTokenCount": prompt,
            "candidatesTokenCount": output_tokens,
            "totalTokenCount": prompt + output_tokens,
        },
        "modelVersion": model,
    }


async def handle_generate_content(request: web.Request) -> web.Response:
    """Answer a ``generateContent`` request.

    Args:
        request: The request (already vetted by the middleware).

    Returns:
        The response, or a Google API error (400, or 404 for another action).
    """
    context = get_context(request)
    model, _, action = request.match_info["model_action"].partition(":")
    if action != ACTION:
        return web.json_response(error_body(404, f"Unknown action {action!r}"), status=404)
    try:
        body = validate(context.body)
    except BadRequest as exc:
        return web.json_response(error_body(400, str(exc)), status=400)
    return web.json_response(build_response(body, model, context.decision.empty))


TOKEN_GRANTS = ("urn:ietf:params:oauth:grant-type:jwt-bearer", "refresh_token")


def make_token_handler(server: ServerState) -> Any:
    """Build the OAuth token handler (not a provider route: no key, no markers).

    Args:
        server: The server state (its ``require_api_key`` is the token handed out).

    Returns:
        The aiohttp handler.
    """

    async def handle_token(request: web.Request) -> web.Response:
        form = await request.post()
        grant = form.get("grant_type")
        if grant not in TOKEN_GRANTS or not (form.get("assertion") or form.get("refresh_token")):
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        token = server.config.require_api_key or DEFAULT_API_KEY
        return web.json_response(
            {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}
        )

    return handle_token


def service_account_info(server_url: str, project: str = "test-project") -> dict[str, str]:
    """A Google service-account key whose ``token_uri`` is this server's ``/token``.

    Written to a file, it works wherever Google accepts one (``GOOGLE_APPLICATION_CREDENTIALS``,
    ``service_account.Credentials.from_service_account_file``): ``google.auth`` signs a JWT
    with the (freshly generated) private key and exchanges it here for the access token the
    Vertex routes accept. (An ``authorized_user`` file cannot be used: ``google.auth``
    always sends those to Google's own token server.)

    Args:
        server_url: The server's base URL.
        project: The key's ``project_id``.

    Returns:
        The key file's JSON content.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "type": "service_account",
        "project_id": project,
        "private_key_id": "fake-server",
        "private_key": pem,
        "client_email": f"fake@{project}.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": f"{server_url}/token",
    }


def register(router: web.UrlDispatcher, server: ServerState) -> None:
    """Register the Vertex AI provider, its routes and the OAuth token endpoint.

    Args:
        router: The application's router.
        server: The server state holding the provider registry.
    """
    spec = ProviderSpec(PROVIDER, error_body, api_key=api_key, key_text=key_text)
    paths = (
        "/{version}/projects/{project}/locations/{location}/publishers/{publisher}/models/{model_action}",
        "/{version}/publishers/{publisher}/models/{model_action}",
    )
    add_provider(router, server, spec, dict.fromkeys(paths, handle_generate_content))
    router.add_post("/token", make_token_handler(server))
