"""Cohere Chat API v2: ``POST /v2/chat`` (what ``cohere.AsyncClientV2.chat`` calls).

Messages use the roles ``system``, ``user``, ``assistant`` and ``tool``; content is a
string or a list of ``{"type": "text", "text": ...}`` blocks. The answer has the
``V2ChatResponse`` shape, with usage under ``usage.tokens`` and ``usage.billed_units``.
``response_format={"type": "json_object", "json_schema": ...}`` gets a JSON object
matching the schema (``{"type": "json_object"}`` alone: ``{"answer": ...}``).
"""

from __future__ import annotations

import uuid
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
)
from .registry import ProviderSpec

PROVIDER = "cohere"
PATH = "/v2/chat"
ROLES = ("system", "user", "assistant", "tool")
NUMBER_RANGES = {
    "temperature": (0.0, 1.0),
    "p": (0.01, 0.99),
    "frequency_penalty": (0.0, 1.0),
    "presence_penalty": (0.0, 1.0),
}


# Cohere errors carry only a message: {"message": ...}.
error_body = message_only_error("message")


def validate(body: Any) -> Mapping[str, Any]:
    """Validate a v2 chat request like the real API.

    Args:
        body: The parsed JSON body.

    Returns:
        The body.

    Raises:
        BadRequest: On a request the API rejects.
    """
    if not isinstance(body, Mapping):
        raise BadRequest("invalid request: body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise BadRequest("invalid request: model must be specified")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("invalid request: messages must not be empty")
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping) or message.get("role") not in ROLES:
            raise BadRequest(
                f"invalid request: messages[{index}].role must be one of {', '.join(ROLES)}"
            )
    for name, (low, high) in NUMBER_RANGES.items():
        value = body.get(name)
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not low <= value <= high
        ):
            raise BadRequest(f"invalid request: {name} must be between {low} and {high}")
    for name in ("max_tokens", "k", "seed"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise BadRequest(f"invalid request: {name} must be an integer")
    stop = body.get("stop_sequences")
    if stop is not None and (
        not isinstance(stop, list) or not all(isinstance(s, str) for s in stop) or len(stop) > 5
    ):
        raise BadRequest("invalid request: stop_sequences must be a list of at most 5 strings")
    response_format = body.get("response_format")
    if response_format is not None and (
        not isinstance(response_format, Mapping)
        or response_format.get("type") not in ("text", "json_object")
    ):
        raise BadRequest("invalid request: response_format.type must be text or json_object")
    if body.get("stream"):
        raise BadRequest("The fake server does not support streaming.")
    return body


def build_response(body: Mapping[str, Any], empty: bool, truncate: bool) -> dict[str, Any]:
    """Build the ``V2ChatResponse`` body.

    Args:
        body: The validated request.
        empty: Answer with no content.
        truncate: Whether ``max_tokens`` limits the answer.

    Returns:
        The response body.
    """
    finish_reason = "COMPLETE"
    content: list[dict[str, Any]] = []
    output_tokens = 0
    if not empty:
        limit = body.get("max_tokens") if truncate else None
        response_format = body.get("response_format") or {}
        schema = response_format.get("json_schema")
        answer = answer_for(
            body["messages"],
            json_mode=response_format.get("type") == "json_object",
            json_schema=schema if isinstance(schema, Mapping) else None,
        )
        text, stopped, truncated = limit_answer(answer, body.get("stop_sequences") or [], limit)
        if truncated:
            finish_reason = "MAX_TOKENS"
        elif stopped:
            finish_reason = "STOP_SEQUENCE"
        content.append({"type": "text", "text": text})
        output_tokens = count_tokens(text)
    input_tokens = prompt_tokens(body["messages"])
    counts = {"input_tokens": input_tokens, "output_tokens": output_tokens}
    return {
        "id": str(uuid.uuid4()),
        "finish_reason": finish_reason,
        "message": {"role": "assistant", "content": content},
        "usage": {"billed_units": dict(counts), "tokens": dict(counts)},
    }


handle_chat = json_handler(
    validate,
    lambda body, context: build_response(
        body, context.decision.empty, context.config.max_tokens_truncates
    ),
    error_body,
)


register = registration(
    ProviderSpec(PROVIDER, error_body, api_key=bearer_key, key_text=chat_key_text),
    {PATH: handle_chat},
)
