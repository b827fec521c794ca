"""Per-request context handed from the middleware to provider handlers."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .behaviour import Decision

if TYPE_CHECKING:
    from .state import ConfigSnapshot

_KEY_NAME = "potstill_fake_server_context"
_REQUEST_KEY_CLASS = getattr(web, "RequestKey", None)
CONTEXT_KEY: Any = (
    _REQUEST_KEY_CLASS(_KEY_NAME, object) if _REQUEST_KEY_CLASS is not None else _KEY_NAME
)


@dataclass(frozen=True)
class RequestContext:
    """What the middleware learnt about a provider request.

    Attributes:
        provider: The provider name.
        body: The parsed JSON body (None when the body was empty).
        decision: The behaviour decision (handlers only need ``decision.empty``).
        config: The server configuration when the request arrived.
        attempt: Zero-based attempt index of this request's key content.
    """

    provider: str
    body: Any
    decision: Decision
    config: ConfigSnapshot
    attempt: int


# The context of the request being answered (the handler runs in the middleware's task).
_CURRENT: ContextVar[RequestContext | None] = ContextVar("fake_server_context", default=None)


def set_context(request: web.Request, context: RequestContext) -> None:
    """Attach the context to a request (and make it the one being answered).

    Args:
        request: The aiohttp request.
        context: Its context.
    """
    request[CONTEXT_KEY] = context
    _CURRENT.set(context)


def choices_served(requested: int) -> int:
    """How many choices to answer when ``requested`` were asked for: one when the server
    ignores ``n``, more when it answers extra choices (see ``ConfigSnapshot``).

    Args:
        requested: The choices the request asked for (``n``, ``candidateCount``...).

    Returns:
        The number of choices to build.
    """
    context = _CURRENT.get()
    if context is None:
        return requested
    served = 1 if context.config.ignore_n else requested
    return served + context.config.extra_choices


def get_context(request: web.Request) -> RequestContext:
    """Return the context the middleware attached to a request.

    Args:
        request: The aiohttp request.

    Returns:
        The context.

    Raises:
        RuntimeError: If the request did not go through the recording middleware.
    """
    context = request.get(CONTEXT_KEY)
    if not isinstance(context, RequestContext):
        raise RuntimeError("Provider handler called without the fake-server middleware")
    return context
