"""OpenAI chat completions: ``POST /v1/chat/completions`` (and ``/chat/completions``).

Validates requests roughly like the real API (enough to catch client bugs) and
answers in the exact ``chat.completion`` shape the ``openai`` SDK parses.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from .answers import count_tokens
from .common import (
    bearer_key,
    build_choices,
    chat_answer,
    chat_key_text,
    prompt_tokens,
    registration,
)
from .context import get_context
from .logprobs import logprobs_content
from .openai_validation import InvalidRequest, validate_chat_request
from .registry import ProviderSpec

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
    value = response_format.get("value")  # TGI's form: {"type": "json_object", "value": schema}
    if response_format.get("type") == "json_object" and isinstance(value, Mapping):
        return True, value
    return response_format.get("type") == "json_object", None


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
        content, finish_reason = chat_answer(
            body, index, max_tokens, json_mode=json_mode, json_schema=schema
        )
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
    choices, completion_tokens = build_choices(
        int(body.get("n") or 1), lambda index: build_choice(body, index, empty, max_tokens)
    )
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


def respond(
    request: web.Request,
    body: Any,
    validate: Callable[[Any], Mapping[str, Any]] = validate_chat_request,
    extend: Callable[[dict[str, Any]], None] | None = None,
) -> web.Response:
    """Answer a chat completion body, for the routes that speak OpenAI's format.

    Args:
        request: The request (already vetted by the middleware).
        body: The body to answer (the request's, or a provider's rewrite of it).
        validate: Returns the valid body, or raises :class:`InvalidRequest`.
        extend: Adds a provider's own fields to the completion, in place.

    Returns:
        The ``chat.completion`` response, or a 400 OpenAI error.
    """
    context = get_context(request)
    try:
        valid = validate(body)
    except InvalidRequest as exc:
        return web.json_response(
            openai_error(400, exc.message, param=exc.param, code=exc.code), status=400
        )
    completion = build_completion(
        valid, context.decision.empty, context.config.max_tokens_truncates
    )
    if extend is not None:
        extend(completion)
    return web.json_response(completion)


async def handle_chat_completions(request: web.Request) -> web.Response:
    """Answer a chat completion request.

    Args:
        request: The request (already vetted by the middleware).

    Returns:
        The ``chat.completion`` response, or a 400 OpenAI error.
    """
    return respond(request, get_context(request).body)


register = registration(
    ProviderSpec(PROVIDER, error_body, api_key=bearer_key, key_text=chat_key_text),
    dict.fromkeys(PATHS, handle_chat_completions),
)
