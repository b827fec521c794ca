"""OpenAI (legacy) text completions: ``POST /v1/completions`` (and ``/completions``).

The endpoint OpenAI-compatible servers (vLLM, TGI, llama.cpp's server) keep for raw
prompts, which Magpie needs. A prompt that ends with the opening of a user turn (ChatML's
``<|im_start|>user`` or Llama 3's ``<|start_header_id|>user<|end_header_id|>``) is answered
with a user's question (:func:`tests.fake_server.scripted.user_question`); any other prompt
as a chat message would be. The answer has the ``text_completion`` shape the ``openai`` SDK
parses.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from .answers import answer_for, count_tokens
from .common import bearer_key, build_choices, limit_answer, registration, stop_list
from .context import get_context
from .openai_chat import error_body, openai_error
from .openai_validation import InvalidRequest, validate_sampling
from .registry import ProviderSpec
from .scripted import user_question

PROVIDER = "openai-completions"
PATHS = ("/v1/completions", "/completions")
_USER_TURN = re.compile(
    r"(?:<\|im_start\|>user\n|<\|start_header_id\|>user<\|end_header_id\|>\n\n)$"
)


def prompt_text(body: Any) -> str:
    """Return the prompt of a completions body (the request's key content).

    Args:
        body: The parsed JSON body.

    Returns:
        The prompt, or ``""`` when the body has none.
    """
    if isinstance(body, Mapping) and isinstance(body.get("prompt"), str):
        return body["prompt"]
    return ""


def validate_completion_request(body: Any) -> Mapping[str, Any]:
    """Validate a completions body (a string prompt; the chat sampling rules).

    Args:
        body: The parsed JSON body.

    Returns:
        The body, typed as a mapping.

    Raises:
        InvalidRequest: If the real API would reject the request.
    """
    if not isinstance(body, Mapping):
        raise InvalidRequest("The request body must be a JSON object.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidRequest("you must provide a model parameter", "model")
    if not isinstance(body.get("prompt"), str):
        raise InvalidRequest("'prompt' must be a string (this fake takes no lists).", "prompt")
    validate_sampling(body)
    return body


def completion_text(prompt: str, index: int) -> str:
    """The text that continues a raw prompt.

    Args:
        prompt: The raw prompt.
        index: The choice index.

    Returns:
        A user's question after an opened user turn, else the chat answer to the prompt.
    """
    if _USER_TURN.search(prompt):
        return user_question(prompt, index)
    return answer_for([{"role": "user", "content": prompt}], index)


async def handle_completions(request: web.Request) -> web.Response:
    """Answer a text completion request.

    Args:
        request: The request (already vetted by the middleware).

    Returns:
        The ``text_completion`` response, or a 400 OpenAI error.
    """
    context = get_context(request)
    try:
        body = validate_completion_request(context.body)
    except InvalidRequest as exc:
        return web.json_response(
            openai_error(400, exc.message, param=exc.param, code=exc.code), status=400
        )
    limit = body.get("max_tokens") if context.config.max_tokens_truncates else None

    def build(index: int) -> tuple[dict[str, Any], int]:
        text: str | None = None
        finish_reason = "stop"
        if not context.decision.empty:
            text, _, truncated = limit_answer(
                completion_text(body["prompt"], index), stop_list(body.get("stop")), limit
            )
            finish_reason = "length" if truncated else "stop"
        choice = {"index": index, "text": text, "logprobs": None, "finish_reason": finish_reason}
        return choice, count_tokens(text)

    choices, completion_tokens = build_choices(int(body.get("n") or 1), build)
    prompt_tokens = count_tokens(body["prompt"])
    return web.json_response(
        {
            "id": f"cmpl-{uuid.uuid4().hex[:24]}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
    )


register = registration(
    ProviderSpec(PROVIDER, error_body, api_key=bearer_key, key_text=prompt_text),
    dict.fromkeys(PATHS, handle_completions),
)
