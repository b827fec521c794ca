"""Hugging Face Text Generation Inference (TGI), served under the ``/tgi`` prefix.

Point ``huggingface_hub.AsyncInferenceClient`` (or ``InferenceEndpointsLLM``) at
``<server>/tgi``:

* ``POST /tgi/v1/chat/completions``: TGI's OpenAI-compatible Messages API (what
  ``chat_completion`` calls); answered by the OpenAI handler, recorded as ``tgi``.
* ``POST /tgi`` and ``POST /tgi/generate``: TGI's native text generation (what
  ``text_generation`` calls): ``{"inputs": prompt, "parameters": {...}}``. ``/tgi``
  answers a one-element list, ``/tgi/generate`` a single object, like TGI. A
  ``parameters.grammar`` of type ``json`` (a JSON schema) or ``regex`` (a pattern) gets
  a text that matches it. ``[[invalid_output]]`` anywhere in the (flat) prompt gets one
  that does not, on every request (the route cannot tell the last user turn).

The prefix keeps these routes apart from the OpenAI module's ``/v1/chat/completions``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from .answers import (
    INVALID_OUTPUT,
    count_tokens,
    plain_answer,
    schema_value,
    wants_invalid_output,
)
from .common import BadRequest, bearer_key, chat_key_text, limit_answer, registration
from .context import get_context
from .markers import strip_markers
from .openai_chat import handle_chat_completions
from .regex_fill import fill_regex
from .registry import ProviderSpec

PROVIDER = "tgi"
PREFIX = "/tgi"
MAX_STOP = 4


def error_body(status: int, message: str) -> dict[str, Any]:
    """Build a TGI error body.

    Args:
        status: HTTP status, which selects the ``error_type``.
        message: Human-readable message.

    Returns:
        ``{"error": ..., "error_type": ...}``.
    """
    kind = "overloaded" if status == 429 else "validation" if status in (400, 422) else "generation"
    return {"error": message, "error_type": kind}


def key_text(body: Any) -> str:
    """Return the key content of a chat or a text generation request.

    Args:
        body: The parsed JSON body.

    Returns:
        The last user message text, or the ``inputs`` prompt, or ``""``.
    """
    if isinstance(body, Mapping) and isinstance(body.get("inputs"), str):
        return body["inputs"]
    return chat_key_text(body)


def _stop_list(parameters: Mapping[str, Any]) -> list[str]:
    stop = parameters.get("stop")
    if stop is None:
        return []
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise BadRequest("Input validation error: `stop` must be a list of strings")
    if len(stop) > MAX_STOP:
        raise BadRequest(
            f"Input validation error: `stop` supports up to {MAX_STOP} stop sequences. "
            f"Given: {len(stop)}"
        )
    return stop


def validate(body: Any) -> tuple[str, Mapping[str, Any]]:
    """Validate a text generation request like TGI.

    Args:
        body: The parsed JSON body.

    Returns:
        The prompt and the parameters.

    Raises:
        BadRequest: On a request TGI rejects.
    """
    if not isinstance(body, Mapping) or not isinstance(body.get("inputs"), str):
        raise BadRequest("Failed to deserialize the JSON body: missing field `inputs`")
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        raise BadRequest("Failed to deserialize the JSON body: `parameters` is not an object")
    for name in ("temperature", "repetition_penalty", "top_p", "typical_p"):
        value = parameters.get(name)
        if value is not None and (not isinstance(value, (int, float)) or value <= 0):
            raise BadRequest(f"Input validation error: `{name}` must be strictly positive")
    for name in ("max_new_tokens", "top_k", "seed", "top_n_tokens"):
        value = parameters.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise BadRequest(f"Input validation error: `{name}` must be an integer")
    grammar = parameters.get("grammar")
    if grammar is not None and (
        not isinstance(grammar, Mapping) or grammar.get("type") not in ("json", "regex")
    ):
        raise BadRequest("Input validation error: `grammar.type` must be json or regex")
    if body.get("stream"):
        raise BadRequest("The fake server does not support streaming.")
    return body["inputs"], parameters


def _grammar_answer(prompt: str, grammar: Mapping[str, Any]) -> str:
    """A text that follows a TGI grammar (or, when the prompt asks, one that does not)."""
    messages = [{"role": "user", "content": prompt}]
    if grammar["type"] == "json":
        return json.dumps(schema_value(messages, grammar["value"]))
    if wants_invalid_output(messages):
        return json.dumps(INVALID_OUTPUT)
    return fill_regex(grammar["value"])


def build_generation(prompt: str, parameters: Mapping[str, Any], empty: bool) -> dict[str, Any]:
    """Build one TGI generation.

    Args:
        prompt: The prompt (markers are ignored for the answer).
        parameters: The validated parameters.
        empty: Answer with an empty text.

    Returns:
        ``{"generated_text", "details"?}``.
    """
    grammar = parameters.get("grammar")
    text = (
        ""
        if empty
        else _grammar_answer(prompt, grammar)
        if grammar
        else plain_answer(strip_markers(prompt))
    )
    text, stopped, truncated = limit_answer(
        text, _stop_list(parameters), parameters.get("max_new_tokens")
    )
    finish_reason = "length" if truncated else "stop_sequence" if stopped else "eos_token"
    generated = count_tokens(text)
    if parameters.get("return_full_text"):
        text = prompt + text
    result: dict[str, Any] = {"generated_text": text}
    if parameters.get("details"):
        seed = parameters.get("seed")
        result["details"] = {
            "finish_reason": finish_reason,
            "generated_tokens": generated,
            "seed": seed if seed is not None else random.randint(0, 2**31 - 1),
            "prefill": [],
            "tokens": [
                {"id": index, "text": token, "logprob": -0.5, "special": False}
                for index, token in enumerate(text.split())
            ],
        }
    return result


async def _generate(request: web.Request, as_list: bool) -> web.Response:
    context = get_context(request)
    try:
        prompt, parameters = validate(context.body)
        generation = build_generation(prompt, parameters, context.decision.empty)
    except BadRequest as exc:
        return web.json_response(error_body(422, str(exc)), status=422)
    return web.json_response([generation] if as_list else generation)


async def handle_compat_generate(request: web.Request) -> web.Response:
    """``POST /tgi``: answers a one-element list, as TGI's root route does.

    Args:
        request: The request (already vetted by the middleware).

    Returns:
        The generation, or a 422 TGI error.
    """
    return await _generate(request, as_list=True)


async def handle_generate(request: web.Request) -> web.Response:
    """``POST /tgi/generate``: answers a single object.

    Args:
        request: The request (already vetted by the middleware).

    Returns:
        The generation, or a 422 TGI error.
    """
    return await _generate(request, as_list=False)


register = registration(
    ProviderSpec(PROVIDER, error_body, api_key=bearer_key, key_text=key_text),
    {
        f"{PREFIX}/v1/chat/completions": handle_chat_completions,
        PREFIX: handle_compat_generate,
        f"{PREFIX}/generate": handle_generate,
    },
)
