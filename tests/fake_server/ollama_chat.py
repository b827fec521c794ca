"""Ollama chat API: ``POST /api/chat`` (what ``ollama.AsyncClient.chat`` calls).

A local Ollama server needs no key; ollama.com expects ``Authorization: Bearer``.
Tests of a keyless setup configure the server with ``require_api_key=None``. The
answer honours ``options.num_predict`` and ``options.stop``, and ``format="json"``
(or a JSON schema) gives a JSON object. Usage is in ``prompt_eval_count`` and
``eval_count``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from .answers import answer_for, content_text, count_tokens, cut_at_stop, truncate_to_tokens
from .context import get_context
from .openai_chat import api_key, key_text
from .registry import ProviderSpec
from .state import ServerState

PROVIDER = "ollama"
PATH = "/api/chat"
ROLES = ("system", "user", "assistant", "tool")


class InvalidRequest(Exception):
    """A request Ollama would reject with 400."""


def error_body(status: int, message: str) -> dict[str, Any]:
    """Build an Ollama error body.

    Args:
        status: HTTP status (unused: Ollama errors only carry a message).
        message: Human-readable message.

    Returns:
        ``{"error": ...}``.
    """
    return {"error": message}


def validate(body: Any) -> Mapping[str, Any]:
    """Validate a chat request like Ollama.

    Args:
        body: The parsed JSON body.

    Returns:
        The body.

    Raises:
        InvalidRequest: On a request Ollama rejects.
    """
    if not isinstance(body, Mapping):
        raise InvalidRequest("invalid request body")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidRequest("model is required")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise InvalidRequest("messages must be a list")
    for message in messages:
        if not isinstance(message, Mapping) or message.get("role") not in ROLES:
            raise InvalidRequest(f"invalid role in message {message!r}")
    options = body.get("options")
    if options is not None and not isinstance(options, Mapping):
        raise InvalidRequest("options must be an object")
    fmt = body.get("format")
    if fmt not in (None, "", "json") and not isinstance(fmt, Mapping):
        raise InvalidRequest(f"invalid format: {fmt!r}")
    if body.get("stream", True):
        raise InvalidRequest("The fake server does not support streaming: send stream=false.")
    return body


def build_response(body: Mapping[str, Any], empty: bool) -> dict[str, Any]:
    """Build the chat response.

    Args:
        body: The validated request.
        empty: Answer with an empty content.

    Returns:
        The response body.
    """
    options = body.get("options") or {}
    done_reason = "stop"
    text = ""
    if not empty:
        fmt = body.get("format")
        schema = fmt if isinstance(fmt, Mapping) else None
        text = answer_for(body["messages"], json_mode=fmt == "json", json_schema=schema)
        stop = options.get("stop") or []
        text, _ = cut_at_stop(text, [stop] if isinstance(stop, str) else list(stop))
        limit = options.get("num_predict")
        if isinstance(limit, int) and limit >= 0 and count_tokens(text) > limit:
            text, done_reason = truncate_to_tokens(text, limit), "length"
    prompt = sum(count_tokens(content_text(m.get("content"))) for m in body["messages"])
    return {
        "model": body["model"],
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "message": {"role": "assistant", "content": text},
        "done": True,
        "done_reason": done_reason,
        "total_duration": 1000,
        "load_duration": 10,
        "prompt_eval_count": prompt,
        "prompt_eval_duration": 100,
        "eval_count": count_tokens(text),
        "eval_duration": 500,
    }


async def handle_chat(request: web.Request) -> web.Response:
    """Answer a chat request.

    Args:
        request: The request (already vetted by the middleware).

    Returns:
        The chat response, or a 400 Ollama error.
    """
    context = get_context(request)
    try:
        body = validate(context.body)
    except InvalidRequest as exc:
        return web.json_response(error_body(400, str(exc)), status=400)
    return web.Response(
        text=json.dumps(build_response(body, context.decision.empty)),
        content_type="application/json",
    )


def register(router: web.UrlDispatcher, server: ServerState) -> None:
    """Register the Ollama provider and its route.

    Args:
        router: The application's router.
        server: The server state holding the provider registry.
    """
    server.providers.add(
        ProviderSpec(name=PROVIDER, error_body=error_body, api_key=api_key, key_text=key_text)
    )
    server.providers.add_route(router, "POST", PATH, handle_chat, PROVIDER)
