"""What the provider modules share: reading the key and the key text of a request, shaping
answers and counting prompt tokens, answering a validated body, and registering a provider.

Each provider module keeps its own wire format (paths, body shapes, error bodies); only
the logic that is the same for several of them lives here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from aiohttp import web

from .answers import (
    answer_for,
    content_text,
    count_tokens,
    cut_at_stop,
    last_user_text,
    truncate_to_tokens,
)
from .context import RequestContext, choices_served, get_context
from .registry import Handler, ProviderSpec
from .state import ServerState

Body = TypeVar("Body")


class BadRequest(Exception):
    """A request the real API would reject; its message is the error's message."""


def bearer_key(request: web.Request) -> str | None:
    """Read the bearer token of a request.

    Args:
        request: The request.

    Returns:
        The key after ``Bearer ``, or None.
    """
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def chat_key_text(body: Any) -> str:
    """Return the last user message text of an OpenAI-shaped chat request body.

    Args:
        body: The parsed JSON body.

    Returns:
        The text, or ``""`` when the body has no usable messages.
    """
    if isinstance(body, Mapping) and isinstance(body.get("messages"), list):
        return last_user_text(body["messages"])
    return ""


def user_text(body: Any, field: str, convert: Callable[[Any], list[dict[str, Any]]]) -> str:
    """Return the text of the last user message of a body in another wire format.

    Args:
        body: The parsed JSON body.
        field: The body field holding the conversation.
        convert: Turns that field into OpenAI-shaped messages.

    Returns:
        The text, or ``""`` when there is no user message.
    """
    if not isinstance(body, Mapping):
        return ""
    for message in reversed(convert(body.get(field))):
        if message["role"] == "user":
            return content_text(message["content"])
    return ""


def message_only_error(field: str) -> Callable[[int, str], dict[str, Any]]:
    """The ``error_body`` of a provider whose errors carry only a message.

    Args:
        field: The key of the message, e.g. ``"error"`` for ``{"error": ...}``.

    Returns:
        The function, which ignores the status (the HTTP status carries it).
    """

    def error_body(status: int, message: str) -> dict[str, Any]:
        return {field: message}

    return error_body


def stop_list(stop: Any) -> list[str]:
    """Normalise a ``stop`` value to a list.

    Args:
        stop: None, a string or a list of strings.

    Returns:
        The stop strings.
    """
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else list(stop)


def prompt_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """Count whitespace tokens over every message content.

    Args:
        messages: The conversation (OpenAI-shaped dicts).

    Returns:
        The token count.
    """
    return sum(count_tokens(content_text(m.get("content"))) for m in messages)


def limit_answer(text: str, stop: Sequence[str], max_tokens: int | None) -> tuple[str, bool, bool]:
    """Cut an answer before its first stop string, then to a token budget.

    Args:
        text: The answer.
        stop: Stop strings.
        max_tokens: The token budget, or None for no limit.

    Returns:
        The answer, whether a stop string cut it and whether the budget cut it.
    """
    text, stopped = cut_at_stop(text, stop)
    if max_tokens is None or count_tokens(text) <= max_tokens:
        return text, stopped, False
    return truncate_to_tokens(text, max_tokens), stopped, True


def chat_answer(
    body: Mapping[str, Any],
    index: int,
    max_tokens: int | None,
    *,
    json_mode: bool = False,
    json_schema: Mapping[str, Any] | None = None,
) -> tuple[str, str]:
    """Answer one choice of an OpenAI-shaped chat body, cut at its ``stop`` strings and to
    ``max_tokens``.

    Args:
        body: The validated request body.
        index: Choice index.
        max_tokens: Token budget, or None for no limit.
        json_mode: Answer with a JSON object.
        json_schema: The schema a JSON answer follows.

    Returns:
        The content and the finish reason (``"length"`` when the budget cut it, else
        ``"stop"``).
    """
    content = answer_for(body["messages"], index, json_mode=json_mode, json_schema=json_schema)
    content, _, truncated = limit_answer(content, stop_list(body.get("stop")), max_tokens)
    return content, "length" if truncated else "stop"


def build_choices(
    count: int, build: Callable[[int], tuple[dict[str, Any], int]]
) -> tuple[list[dict[str, Any]], int]:
    """Build the choices (candidates) of an answer.

    Args:
        count: How many were asked for; the server's ``ignore_n`` and ``extra_choices``
            settings change how many are built.
        build: Builds the choice of an index and counts its tokens.

    Returns:
        The choices and their total token count.
    """
    built = [build(index) for index in range(choices_served(count))]
    return [choice for choice, _ in built], sum(tokens for _, tokens in built)


def json_handler(
    validate: Callable[[Any], Body],
    build: Callable[[Body, RequestContext], Any],
    error_body: Callable[[int, str], dict[str, Any]],
) -> Handler:
    """A route handler that validates the body and answers with what ``build`` makes.

    Args:
        validate: Returns the valid body, or raises :class:`BadRequest`.
        build: Builds the JSON answer from the valid body and the request's context.
        error_body: The provider's error body, sent with status 400 for a bad request.

    Returns:
        The aiohttp handler.
    """

    async def handle(request: web.Request) -> web.Response:
        context = get_context(request)
        try:
            body = validate(context.body)
        except BadRequest as exc:
            return web.json_response(error_body(400, str(exc)), status=400)
        return web.json_response(build(body, context))

    return handle


def registration(
    spec: ProviderSpec, routes: Mapping[str, Handler]
) -> Callable[[web.UrlDispatcher, ServerState], None]:
    """The ``register`` function of a provider module (see :func:`add_provider`).

    Args:
        spec: The provider's spec.
        routes: The handler of each ``POST`` path.

    Returns:
        ``register(router, server)``, for :func:`tests.fake_server.app.register_providers`.
    """

    def register(router: web.UrlDispatcher, server: ServerState) -> None:
        add_provider(router, server, spec, routes)

    return register


def add_provider(
    router: web.UrlDispatcher,
    server: ServerState,
    spec: ProviderSpec,
    routes: Mapping[str, Handler],
) -> None:
    """Register a provider and its ``POST`` routes.

    Args:
        router: The application's router.
        server: The server state holding the provider registry.
        spec: The provider's spec.
        routes: The handler of each path.
    """
    server.providers.add(spec)
    for path, handler in routes.items():
        server.providers.add_route(router, "POST", path, handler, spec.name)
