"""Groq chat completions: ``POST /openai/v1/chat/completions``.

Groq speaks OpenAI's chat completions under its own path prefix, with a bearer key. Like
the real API it rejects ``n`` other than 1, and adds ``x_groq`` and timing fields to the
answer.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .context import get_context
from .openai_chat import api_key, build_completion, key_text, openai_error
from .openai_validation import InvalidRequest, validate_chat_request
from .registry import ProviderSpec
from .state import ServerState

PROVIDER = "groq"
PATH = "/openai/v1/chat/completions"


def error_body(status: int, message: str) -> dict[str, Any]:
    """Format an error like Groq does (OpenAI's shape).

    Args:
        status: HTTP status.
        message: Human-readable message.

    Returns:
        The error body.
    """
    return openai_error(status, message)


def validate_groq_request(body: Any) -> dict[str, Any]:
    """Validate like OpenAI, plus Groq's own limits.

    Args:
        body: The parsed JSON body.

    Returns:
        The body.

    Raises:
        InvalidRequest: If Groq would reject the request.
    """
    valid = dict(validate_chat_request(body))
    n = valid.get("n")
    if n is not None and n != 1:
        raise InvalidRequest("'n' : number must be at most 1", "n", "invalid_value")
    return valid


async def handle_chat_completions(request: web.Request) -> web.Response:
    """Answer a Groq chat completion request.

    Args:
        request: The request (already vetted by the middleware).

    Returns:
        The ``chat.completion`` response, or a 400 error.
    """
    context = get_context(request)
    try:
        body = validate_groq_request(context.body)
    except InvalidRequest as exc:
        return web.json_response(
            openai_error(400, exc.message, param=exc.param, code=exc.code), status=400
        )
    completion = build_completion(body, context.decision.empty, context.config.max_tokens_truncates)
    completion["usage"].update({"queue_time": 0.001, "prompt_time": 0.001, "completion_time": 0.01})
    completion["x_groq"] = {"id": f"req_{completion['id'][-24:]}"}
    return web.json_response(completion)


def register(router: web.UrlDispatcher, server: ServerState) -> None:
    """Register the Groq provider and its chat completion route.

    Args:
        router: The application's router.
        server: The server state holding the provider registry.
    """
    server.providers.add(
        ProviderSpec(name=PROVIDER, error_body=error_body, api_key=api_key, key_text=key_text)
    )
    server.providers.add_route(router, "POST", PATH, handle_chat_completions, PROVIDER)
