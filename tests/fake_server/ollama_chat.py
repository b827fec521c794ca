"""Ollama chat API: ``POST /api/chat`` (what ``ollama.AsyncClient.chat`` calls).

A local Ollama server needs no key; ollama.com expects ``Authorization: Bearer``.
Tests of a keyless setup configure the server with ``require_api_key=None``. The
answer honours ``options.num_predict`` and ``options.stop``, and ``format="json"``
(or a JSON schema) gives a JSON object. Usage is in ``prompt_eval_count`` and
``eval_count``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from .answers import answer_for, count_tokens
from .common import (
    BadRequest,
    bearer_key,
    chat_key_text,
    json_handler,
    limit_answer,
    message_only_error,
    prompt_tokens,
    registration,
    stop_list,
)
from .registry import ProviderSpec

PROVIDER = "ollama"
PATH = "/api/chat"
ROLES = ("system", "user", "assistant", "tool")


# Ollama errors carry only a message: {"error": ...}.
error_body = message_only_error("error")


def validate(body: Any) -> Mapping[str, Any]:
    """Validate a chat request like Ollama.

    Args:
        body: The parsed JSON body.

    Returns:
        The body.

    Raises:
        BadRequest: On a request Ollama rejects.
    """
    if not isinstance(body, Mapping):
        raise BadRequest("invalid request body")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise BadRequest("model is required")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise BadRequest("messages must be a list")
    for message in messages:
        if not isinstance(message, Mapping) or message.get("role") not in ROLES:
            raise BadRequest(f"invalid role in message {message!r}")
    options = body.get("options")
    if options is not None and not isinstance(options, Mapping):
        raise BadRequest("options must be an object")
    fmt = body.get("format")
    if fmt not in (None, "", "json") and not isinstance(fmt, Mapping):
        raise BadRequest(f"invalid format: {fmt!r}")
    if body.get("stream", True):
        raise BadRequest("The fake server does not support streaming: send stream=false.")
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
        limit = options.get("num_predict")
        text, _, truncated = limit_answer(
            text,
            stop_list(options.get("stop") or None),
            limit if isinstance(limit, int) and limit >= 0 else None,
        )
        if truncated:
            done_reason = "length"
    prompt = prompt_tokens(body["messages"])
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


handle_chat = json_handler(
    validate, lambda body, context: build_response(body, context.decision.empty), error_body
)


register = registration(
    ProviderSpec(PROVIDER, error_body, api_key=bearer_key, key_text=chat_key_text),
    {PATH: handle_chat},
)
