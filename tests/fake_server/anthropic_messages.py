"""Anthropic Messages API: ``POST /v1/messages``.

The key is read from ``x-api-key`` only, as the real API does for API keys, so a
client that sends the key only as a bearer token is rejected with 401. Requests are
validated roughly like the real API (roles, ``system`` at the top level, required
``max_tokens``, sampling ranges, ``tools`` and ``tool_choice``) and answered in the
``message`` shape the ``anthropic`` SDK parses. A ``tool_choice`` that forces one tool
(``{"type": "tool", "name": ...}``) is answered with a ``tool_use`` block whose input
is filled to match the tool's ``input_schema`` (see ``answers.schema_value``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from .answers import answer_for, content_text, count_tokens, cut_at_stop, schema_value
from .common import (
    BadRequest,
    json_handler,
    limit_answer,
    prompt_tokens,
    registration,
    user_text,
)
from .registry import ProviderSpec

PROVIDER = "anthropic"
PATH = "/v1/messages"
ROLES = ("user", "assistant")
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def error_body(status: int, message: str) -> dict[str, Any]:
    """Build an Anthropic error body.

    Args:
        status: HTTP status, which selects the error ``type``.
        message: Human-readable message.

    Returns:
        ``{"type": "error", "error": {"type", "message"}}``.
    """
    kind = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def api_key(request: web.Request) -> str | None:
    """Read the ``x-api-key`` header.

    Args:
        request: The request.

    Returns:
        The key, or None when the header is missing.
    """
    return request.headers.get("x-api-key") or None


def _openai_messages(messages: Any) -> list[dict[str, Any]]:
    """Convert Anthropic messages to OpenAI-shaped ones for :func:`answer_for`.

    Args:
        messages: The request's ``messages`` (may be malformed).

    Returns:
        ``{"role", "content"}`` dicts; content blocks keep their ``text``.
    """
    if not isinstance(messages, list):
        return []
    return [
        {"role": m.get("role"), "content": m.get("content")}
        for m in messages
        if isinstance(m, Mapping)
    ]


def key_text(body: Any) -> str:
    """Return the text of the last user message, or ``""``.

    Args:
        body: The parsed JSON body.

    Returns:
        The text.
    """
    return user_text(body, "messages", _openai_messages)


def _number_in(body: Mapping[str, Any], name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise BadRequest(f"{name}: Input should be a number in [{low}, {high}]")


def validate(body: Any) -> Mapping[str, Any]:
    """Validate a Messages request like the real API.

    Args:
        body: The parsed JSON body.

    Returns:
        The body.

    Raises:
        BadRequest: On a request the API rejects.
    """
    if not isinstance(body, Mapping):
        raise BadRequest("The request body must be a JSON object.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise BadRequest("model: Field required")
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise BadRequest("max_tokens: Field required (an integer >= 1)")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages: at least one message is required")
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise BadRequest(f"messages.{index}: Input should be an object")
        if message.get("role") not in ROLES:
            raise BadRequest(
                f"messages.{index}.role: Input should be 'user' or 'assistant' "
                "(a system prompt goes in the top-level `system` parameter)"
            )
        if not isinstance(message.get("content"), (str, list)):
            raise BadRequest(f"messages.{index}.content: Field required")
    system = body.get("system")
    if system is not None and not isinstance(system, (str, list)):
        raise BadRequest("system: Input should be a string or a list of text blocks")
    _number_in(body, "temperature", 0.0, 1.0)
    _number_in(body, "top_p", 0.0, 1.0)
    top_k = body.get("top_k")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0):
        raise BadRequest("top_k: Input should be a non-negative integer")
    stop = body.get("stop_sequences")
    if stop is not None and (
        not isinstance(stop, list) or not all(isinstance(s, str) for s in stop)
    ):
        raise BadRequest("stop_sequences: Input should be a list of strings")
    _validate_tools(body)
    if body.get("stream"):
        raise BadRequest("The fake server does not support streaming.")
    return body


def _validate_tools(body: Mapping[str, Any]) -> None:
    tools = body.get("tools")
    names = []
    if tools is not None:
        if not isinstance(tools, list):
            raise BadRequest("tools: Input should be a list")
        for index, tool in enumerate(tools):
            if not isinstance(tool, Mapping) or not isinstance(tool.get("name"), str):
                raise BadRequest(f"tools.{index}.name: Field required")
            schema = tool.get("input_schema")
            if not isinstance(schema, Mapping) or schema.get("type") != "object":
                raise BadRequest(f"tools.{index}.input_schema.type: Input should be 'object'")
            names.append(tool["name"])
    choice = body.get("tool_choice")
    if choice is not None:
        if not isinstance(choice, Mapping) or choice.get("type") not in ("auto", "any", "tool"):
            raise BadRequest("tool_choice: Input should be auto, any or tool")
        if choice["type"] == "tool" and choice.get("name") not in names:
            raise BadRequest(f"tool_choice.name: no tool named {choice.get('name')!r}")


def _forced_tool(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The tool ``tool_choice`` forces the model to call, if any."""
    choice = body.get("tool_choice") or {}
    if choice.get("type") != "tool":
        return None
    return next(tool for tool in body["tools"] if tool["name"] == choice["name"])


def _prompt_tokens(body: Mapping[str, Any]) -> int:
    system = content_text(body.get("system"))
    return count_tokens(system) + prompt_tokens(_openai_messages(body.get("messages")))


def build_message(body: Mapping[str, Any], empty: bool, truncate: bool) -> dict[str, Any]:
    """Build the ``message`` response.

    Args:
        body: The validated request.
        empty: Answer with no content blocks.
        truncate: Whether ``max_tokens`` limits the answer.

    Returns:
        The response body.
    """
    content: list[dict[str, Any]] = []
    stop_reason = "end_turn"
    stop_sequence = None
    output_tokens = 0
    tool = _forced_tool(body)
    if not empty and tool is not None:
        value = schema_value(_openai_messages(body["messages"]), tool["input_schema"])
        content.append(
            {
                "type": "tool_use",
                "id": f"toolu_{uuid.uuid4().hex[:24]}",
                "name": tool["name"],
                "input": value,
            }
        )
        stop_reason = "tool_use"
        output_tokens = count_tokens(str(value))
    elif not empty:
        text = answer_for(_openai_messages(body["messages"]))
        for candidate in body.get("stop_sequences") or []:
            cut, found = cut_at_stop(text, [candidate])
            if found:
                text, stop_reason, stop_sequence = cut, "stop_sequence", candidate
                break
        text, _, truncated = limit_answer(text, [], body["max_tokens"] if truncate else None)
        if truncated:
            stop_reason = "max_tokens"
        content.append({"type": "text", "text": text})
        output_tokens = count_tokens(text)
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": {"input_tokens": _prompt_tokens(body), "output_tokens": output_tokens},
    }


handle_messages = json_handler(
    validate,
    lambda body, context: build_message(
        body, context.decision.empty, context.config.max_tokens_truncates
    ),
    error_body,
)


register = registration(
    ProviderSpec(PROVIDER, error_body, api_key=api_key, key_text=key_text),
    {PATH: handle_messages},
)
