"""OpenAI chat completions: ``POST /v1/chat/completions`` (and ``/chat/completions``).

Validates requests roughly like the real API (enough to catch client bugs) and
answers in the exact ``chat.completion`` shape the ``openai`` SDK parses.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from .answers import (
    answer_for,
    content_text,
    count_tokens,
    cut_at_stop,
    last_user_text,
    truncate_to_tokens,
)
from .context import get_context
from .logprobs import logprobs_content
from .openai_validation import InvalidRequest, validate_chat_request
from .registry import ProviderSpec
from .state import ServerState

PROVIDER = "openai"
PATHS = ("/v1/chat/completions", "/chat/completions")
SYSTEM_FINGERPRINT = "fp_potstill_fake"


def openai_error(
    status: int, message: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """Build an OpenAI error body.

    Args:
        status: HTTP status, which selects the error ``type``.
        message: Human-readable message.
        param: The offending request parameter, if any.
        code: Machine-readable code; a default is picked for 401 and 429.

    Returns:
        ``{"error": {"message", "type", "param", "code"}}``.
    """
    if status == 429:
        kind, default_code = "requests", "rate_limit_exceeded"
    elif status >= 500:
        kind, default_code = "server_error", None
    elif status == 401:
        kind, default_code = "invalid_request_error", "invalid_api_key"
    else:
        kind, default_code = "invalid_request_error", None
    return {
        "error": {
            "message": message,
            "type": kind,
            "param": param,
            "code": code if code is not None else default_code,
        }
    }


def error_body(status: int, message: str) -> dict[str, Any]:
    """Format an error for the middleware (see :class:`ProviderSpec`).

    Args:
        status: HTTP status.
        message: Human-readable message.

    Returns:
        The OpenAI error body.
    """
    return openai_error(status, message)


def api_key(request: web.Request) -> str | None:
    """Read the bearer token of a request.

    Args:
        request: The request.

    Returns:
        The key after ``Bearer ``, or None.
    """
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def key_text(body: Any) -> str:
    """Return the last user message text of a chat request body.

    Args:
        body: The parsed JSON body.

    Returns:
        The text, or ``""`` when the body has no usable messages.
    """
    if isinstance(body, Mapping) and isinstance(body.get("messages"), list):
        return last_user_text(body["messages"])
    return ""


def _json_format(response_format: Any) -> tuple[bool, Mapping[str, Any] | None]:
    """Read the JSON mode and schema from ``response_format``.

    Args:
        response_format: The request's ``response_format`` (validated).

    Returns:
        Whether JSON is requested, and the schema for ``json_schema``.
    """
    if not isinstance(response_format, Mapping):
        return False, None
    if response_format.get("type") == "json_schema":
        schema = response_format["json_schema"].get("schema")
        return True, schema if isinstance(schema, Mapping) else {}
    return response_format.get("type") == "json_object", None


def _stop_list(stop: Any) -> list[str]:
    """Normalise ``stop`` to a list.

    Args:
        stop: None, a string or a list of strings.

    Returns:
        The stop strings.
    """
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else list(stop)


def build_choice(
    body: Mapping[str, Any], index: int, empty: bool, max_tokens: int | None
) -> tuple[dict[str, Any], int]:
    """Build one choice.

    Args:
        body: The validated request body.
        index: Choice index.
        empty: Answer with null content.
        max_tokens: Token budget, or None for no limit.

    Returns:
        The choice dict and its completion token count.
    """
    content: str | None = None
    finish_reason = "stop"
    if not empty:
        json_mode, schema = _json_format(body.get("response_format"))
        content = answer_for(body["messages"], index, json_mode=json_mode, json_schema=schema)
        content, _ = cut_at_stop(content, _stop_list(body.get("stop")))
        if max_tokens is not None and count_tokens(content) > max_tokens:
            content = truncate_to_tokens(content, max_tokens)
            finish_reason = "length"
    logprobs = None
    if body.get("logprobs"):
        top_n = int(body.get("top_logprobs") or 0)
        logprobs = {"content": logprobs_content(content, top_n), "refusal": None}
    choice = {
        "index": index,
        "message": {"role": "assistant", "content": content, "refusal": None, "annotations": []},
        "logprobs": logprobs,
        "finish_reason": finish_reason,
    }
    return choice, count_tokens(content)


def prompt_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """Count whitespace tokens over every message content.

    Args:
        messages: The conversation.

    Returns:
        The token count.
    """
    return sum(count_tokens(content_text(m.get("content"))) for m in messages)


def build_completion(
    body: Mapping[str, Any], empty: bool, max_tokens_truncates: bool
) -> dict[str, Any]:
    """Build a ``chat.completion`` body.

    Args:
        body: The validated request body.
        empty: Answer every choice with null content.
        max_tokens_truncates: Whether ``max_tokens`` limits the answers.

    Returns:
        The response body.
    """
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    max_tokens = limit if max_tokens_truncates else None
    choices: list[dict[str, Any]] = []
    completion_tokens = 0
    for index in range(int(body.get("n") or 1)):
        choice, tokens = build_choice(body, index, empty, max_tokens)
        choices.append(choice)
        completion_tokens += tokens
    prompt = prompt_tokens(body["messages"])
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }


async def handle_chat_completions(request: web.Request) -> web.Response:
    """Answer a chat completion request.

    Args:
        request: The request (already vetted by the middleware).

    Returns:
        The ``chat.completion`` response, or a 400 OpenAI error.
    """
    context = get_context(request)
    try:
        body = validate_chat_request(context.body)
    except InvalidRequest as exc:
        return web.json_response(
            openai_error(400, exc.message, param=exc.param, code=exc.code), status=400
        )
    completion = build_completion(body, context.decision.empty, context.config.max_tokens_truncates)
    return web.json_response(completion)


def register(router: web.UrlDispatcher, server: ServerState) -> None:
    """Register the OpenAI provider and its chat completion routes.

    Args:
        router: The application's router.
        server: The server state holding the provider registry.
    """
    server.providers.add(
        ProviderSpec(name=PROVIDER, error_body=error_body, api_key=api_key, key_text=key_text)
    )
    for path in PATHS:
        server.providers.add_route(router, "POST", path, handle_chat_completions, PROVIDER)
