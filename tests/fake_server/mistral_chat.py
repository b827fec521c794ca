"""Mistral chat completions: ``POST /mistral/v1/chat/completions``.

The real path is ``/v1/chat/completions``, the same as OpenAI's, so this fake serves it
under the ``/mistral`` prefix: point the ``mistralai`` SDK at ``<server.url>/mistral``
(its ``server_url``) and the SDK appends ``/v1/chat/completions`` itself.

Validation follows the real API: unknown body fields are rejected with a 422 whose body
lists them (the API forbids extra inputs, so a client that sends OpenAI names such as
``seed`` is caught), and numeric fields are range-checked. The answer is Mistral's
``chat.completion`` shape with ``usage``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
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
from .registry import ProviderSpec

PROVIDER = "mistral"
PREFIX = "/mistral"
PATH = f"{PREFIX}/v1/chat/completions"

ROLES = ("system", "user", "assistant", "tool")
FIELDS = frozenset(
    {
        "model",
        "messages",
        "temperature",
        "top_p",
        "max_tokens",
        "min_tokens",
        "stream",
        "stop",
        "random_seed",
        "metadata",
        "response_format",
        "tools",
        "tool_choice",
        "presence_penalty",
        "frequency_penalty",
        "repetition_penalty",
        "top_k",
        "logprobs",
        "top_logprobs",
        "prompt_logprobs",
        "top_prompt_logprobs",
        "n",
        "prediction",
        "parallel_tool_calls",
        "reasoning_effort",
        "prompt_mode",
        "guardrails",
        "prompt_cache_key",
        "service_tier",
        "safe_prompt",
    }
)
RANGES: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}
NON_NEGATIVE_INTS = ("max_tokens", "min_tokens", "random_seed")
RESPONSE_FORMAT_TYPES = ("text", "json_object", "json_schema")


class InvalidMistralRequest(Exception):
    """A request the real API would reject with 422.

    Attributes:
        detail: FastAPI-style validation details (``type``, ``loc``, ``msg``, ``input``).
    """

    def __init__(self, kind: str, field: str, message: str, value: Any = None) -> None:
        """Create the error.

        Args:
            kind: The validation error type, e.g. ``"extra_forbidden"``.
            field: The offending body field (dotted for nested ones).
            message: Human-readable message.
            value: The offending value.
        """
        super().__init__(message)
        location: list[Any] = ["body", *field.split(".")]
        self.detail = [{"type": kind, "loc": location, "msg": message, "input": value}]


def error_body(status: int, message: Any) -> dict[str, Any]:
    """Format an error like Mistral does.

    Args:
        status: HTTP status.
        message: Human-readable message (or validation details for 422).

    Returns:
        ``{"object": "error", "message", "type", "param", "code"}``.
    """
    if status == 422:
        kind = "invalid_request_message_error"
    elif status == 401:
        kind = "authentication_error"
    elif status == 429:
        kind = "rate_limited"
    elif status >= 500:
        kind = "internal_server_error"
    else:
        kind = "invalid_request_error"
    return {"object": "error", "message": message, "type": kind, "param": None, "code": None}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _validate_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise InvalidMistralRequest(
            "missing", "messages", "Field required: a non-empty list", messages
        )
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        if not isinstance(message, Mapping):
            raise InvalidMistralRequest("model_type", where, "Input should be an object", message)
        role = message.get("role")
        if role not in ROLES:
            raise InvalidMistralRequest(
                "union_tag_invalid",
                f"{where}.role",
                f"Input tag '{role}' does not match any of the expected tags: {ROLES}",
                role,
            )
        content = message.get("content")
        if content is None and not (role == "assistant" and message.get("tool_calls")):
            raise InvalidMistralRequest("missing", f"{where}.content", "Field required")
        if content is not None and not isinstance(content, (str, list)):
            raise InvalidMistralRequest(
                "string_type", f"{where}.content", "Input should be a string or chunks", content
            )


def validate_mistral_request(body: Any) -> Mapping[str, Any]:
    """Validate a Mistral chat completion body.

    Args:
        body: The parsed JSON body.

    Returns:
        The body.

    Raises:
        InvalidMistralRequest: If the real API would reject the request.
    """
    if not isinstance(body, Mapping):
        raise InvalidMistralRequest("model_type", "body", "Input should be an object", body)
    for name in body:
        if name not in FIELDS:
            raise InvalidMistralRequest(
                "extra_forbidden", name, "Extra inputs are not permitted", body[name]
            )
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidMistralRequest("missing", "model", "Field required: a model name", model)
    _validate_messages(body.get("messages"))
    for name, (low, high) in RANGES.items():
        value = body.get(name)
        if value is not None and (not _is_number(value) or not low <= value <= high):
            raise InvalidMistralRequest(
                "less_than_equal", name, f"Input should be in [{low}, {high}]", value
            )
    for name in NON_NEGATIVE_INTS:
        value = body.get(name)
        if value is not None and (not _is_int(value) or value < 0):
            raise InvalidMistralRequest(
                "greater_than_equal", name, "Input should be an integer >= 0", value
            )
    n = body.get("n")
    if n is not None and (not _is_int(n) or n < 1):
        raise InvalidMistralRequest("greater_than_equal", "n", "Input should be >= 1", n)
    stop = body.get("stop")
    if stop is not None and not (
        isinstance(stop, str) or (isinstance(stop, list) and all(isinstance(s, str) for s in stop))
    ):
        raise InvalidMistralRequest("string_type", "stop", "Input should be a string or list", stop)
    response_format = body.get("response_format")
    if response_format is not None and (
        not isinstance(response_format, Mapping)
        or response_format.get("type", "text") not in RESPONSE_FORMAT_TYPES
    ):
        raise InvalidMistralRequest(
            "enum", "response_format.type", "Input should be a known format", response_format
        )
    if body.get("stream"):
        raise InvalidMistralRequest("value_error", "stream", "The fake server does not stream")
    return body


def build_choice(
    body: Mapping[str, Any], index: int, empty: bool, max_tokens: int | None
) -> tuple[dict[str, Any], int]:
    """Build one Mistral choice.

    Args:
        body: The validated request body.
        index: Choice index.
        empty: Answer with null content.
        max_tokens: Token budget, or None for no limit.

    Returns:
        The choice and its completion token count.
    """
    content: str | None = None
    finish_reason = "stop"
    if not empty:
        response_format = body.get("response_format") or {}
        json_mode = response_format.get("type") in ("json_object", "json_schema")
        schema = (response_format.get("json_schema") or {}).get("schema")
        content, finish_reason = chat_answer(
            body,
            index,
            max_tokens,
            json_mode=json_mode,
            json_schema=schema if isinstance(schema, Mapping) else None,
        )
    message = {"role": "assistant", "content": content, "tool_calls": None, "prefix": False}
    return {"index": index, "message": message, "finish_reason": finish_reason}, count_tokens(
        content
    )


def build_completion(
    body: Mapping[str, Any], empty: bool, max_tokens_truncates: bool
) -> dict[str, Any]:
    """Build Mistral's ``chat.completion`` answer.

    Args:
        body: The validated request body.
        empty: Answer every choice with null content.
        max_tokens_truncates: Whether ``max_tokens`` limits the answers.

    Returns:
        The response body.
    """
    max_tokens = body.get("max_tokens") if max_tokens_truncates else None
    choices, completion_tokens = build_choices(
        int(body.get("n") or 1), lambda index: build_choice(body, index, empty, max_tokens)
    )
    prompt = prompt_tokens(body["messages"])
    return {
        "id": uuid.uuid4().hex,
        "object": "chat.completion",
        "model": body["model"],
        "created": int(time.time()),
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt + completion_tokens,
        },
    }


async def handle_chat_completions(request: web.Request) -> web.Response:
    """Answer a Mistral chat completion request.

    Args:
        request: The request (already vetted by the middleware).

    Returns:
        The ``chat.completion`` response, or a 422 Mistral error.
    """
    context = get_context(request)
    try:
        body = validate_mistral_request(context.body)
    except InvalidMistralRequest as exc:
        return web.json_response(error_body(422, {"detail": exc.detail}), status=422)
    completion = build_completion(body, context.decision.empty, context.config.max_tokens_truncates)
    return web.json_response(completion)


register = registration(
    ProviderSpec(PROVIDER, error_body, api_key=bearer_key, key_text=chat_key_text),
    {PATH: handle_chat_completions},
)
