"""Azure OpenAI chat completions: ``POST /openai/deployments/{deployment}/chat/completions``.

Azure serves OpenAI's chat completions per *deployment*: the deployment name is in the
path, the ``api-version`` query parameter is required, and the key travels in the
``api-key`` header (or as a bearer token for Entra ID). The body and answer are OpenAI's.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .context import get_context
from .openai_chat import build_completion, key_text, openai_error
from .openai_validation import InvalidRequest, validate_chat_request
from .registry import ProviderSpec
from .state import ServerState

PROVIDER = "azure"
PATH = "/openai/deployments/{deployment}/chat/completions"


def error_body(status: int, message: str) -> dict[str, Any]:
    """Format an error like Azure OpenAI does (OpenAI's shape).

    Args:
        status: HTTP status.
        message: Human-readable message.

    Returns:
        The error body.
    """
    return openai_error(status, message)


def api_key(request: web.Request) -> str | None:
    """Read the key from the ``api-key`` header, else from a bearer token.

    Args:
        request: The request.

    Returns:
        The key, or None.
    """
    key = request.headers.get("api-key", "").strip()
    if key:
        return key
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def handle_deployment_chat(request: web.Request) -> web.Response:
    """Answer a chat completion for the deployment named in the path.

    Args:
        request: The request (already vetted by the middleware).

    Returns:
        The ``chat.completion`` response (``model`` is the deployment), or a 400/404 error.
    """
    context = get_context(request)
    if not request.query.get("api-version"):
        return web.json_response(
            openai_error(
                404,
                "The api-version query parameter (?api-version=) is required for all requests.",
                code="MissingApiVersionParameter",
            ),
            status=404,
        )
    body = context.body
    if isinstance(body, dict):
        # Azure picks the model from the deployment; a `model` in the body is ignored.
        body = {**body, "model": request.match_info["deployment"]}
    try:
        valid = validate_chat_request(body)
    except InvalidRequest as exc:
        return web.json_response(
            openai_error(400, exc.message, param=exc.param, code=exc.code), status=400
        )
    completion = build_completion(
        valid, context.decision.empty, context.config.max_tokens_truncates
    )
    completion["prompt_filter_results"] = []
    return web.json_response(completion)


def register(router: web.UrlDispatcher, server: ServerState) -> None:
    """Register the Azure OpenAI provider and its deployment route.

    Args:
        router: The application's router.
        server: The server state holding the provider registry.
    """
    server.providers.add(
        ProviderSpec(name=PROVIDER, error_body=error_body, api_key=api_key, key_text=key_text)
    )
    server.providers.add_route(router, "POST", PATH, handle_deployment_chat, PROVIDER)
