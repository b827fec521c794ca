"""Groq chat completions: ``POST /openai/v1/chat/completions``.

Groq speaks OpenAI's chat completions under its own path prefix, with a bearer key. Like
the real API it rejects ``n`` other than 1, and adds ``x_groq`` and timing fields to the
answer.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .common import bearer_key, chat_key_text, registration
from .context import get_context
from .openai_chat import error_body, respond
from .openai_validation import InvalidRequest, validate_chat_request
from .registry import ProviderSpec

PROVIDER = "groq"
PATH = "/openai/v1/chat/completions"


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


def _add_groq_fields(completion: dict[str, Any]) -> None:
    completion["usage"].update({"queue_time": 0.001, "prompt_time": 0.001, "completion_time": 0.01})
    completion["x_groq"] = {"id": f"req_{completion['id'][-24:]}"}


async def handle_chat_completions(request: web.Request) -> web.Response:
    """Answer a Groq chat completion request.

    Args:
        request: The request (already vetted by the middleware).

    Returns:
        The ``chat.completion`` response, or a 400 error.
    """
    return respond(
        request, get_context(request).body, validate=validate_groq_request, extend=_add_groq_fields
    )


register = registration(
    ProviderSpec(PROVIDER, error_body, api_key=bearer_key, key_text=chat_key_text),
    {PATH: handle_chat_completions},
)
