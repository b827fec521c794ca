"""The middleware that records provider requests and applies behaviour decisions.

For every request outside ``/_control/`` it tracks concurrency and records a
:class:`~tests.fake_server.state.RecordedRequest`. For requests on provider
routes it also checks the API key, draws the behaviour decision, waits for the
global latency plus any marker/fault delay, and answers errors, dropped
connections and malformed bodies itself, so provider handlers only build success
bodies.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any

from aiohttp import web

from .behaviour import Decision, MarkerError, decide
from .context import RequestContext, set_context
from .registry import Handler, ProviderSpec
from .state import ConfigSnapshot, RecordedRequest, ServerState

CONTROL_PREFIX = "/_control"
MALFORMED_BODY = b'{"id": "fake-malformed", "choices": [{"index": 0, "message": '
LOGGER = logging.getLogger(__name__)


def is_control_path(path: str) -> bool:
    """Tell whether a path belongs to the control API.

    Args:
        path: URL path.

    Returns:
        True for ``/_control`` and everything under it.
    """
    return path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/")


def parse_body(raw: bytes) -> tuple[Any, bool]:
    """Parse a request body as JSON.

    Args:
        raw: The raw body.

    Returns:
        The parsed value (None for an empty body) and whether parsing succeeded.
    """
    if not raw.strip():
        return None, True
    try:
        return json.loads(raw), True
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None, False


def format_retry_after(seconds: float | str) -> str:
    """Format seconds like real APIs do in ``Retry-After``.

    Args:
        seconds: The delay, or a text sent as it is (a malformed header).

    Returns:
        An integer string for whole seconds (``"2"``), else a decimal one (``"1.5"``).
    """
    if isinstance(seconds, str):
        return seconds
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def error_response(
    spec: ProviderSpec, status: int, message: str, retry_after: float | str | None = None
) -> web.Response:
    """Build an error response in the provider's format.

    Args:
        spec: The provider.
        status: HTTP status.
        message: Human-readable message.
        retry_after: Seconds for a ``Retry-After`` header, if any.

    Returns:
        The JSON response.
    """
    headers = {} if retry_after is None else {"Retry-After": format_retry_after(retry_after)}
    return web.json_response(spec.error_body(status, message), status=status, headers=headers)


def drop_connection(request: web.Request) -> web.Response:
    """Close the client connection without answering.

    The returned response is never sent: aiohttp notices the closed transport and
    silently gives up writing it.

    Args:
        request: The request whose connection is closed.

    Returns:
        A placeholder response for aiohttp.
    """
    transport = request.transport
    if transport is not None:
        transport.close()
    return web.Response(status=200)


class _Outcome:
    """Mutable facts about one request, filled in while handling it."""

    def __init__(self) -> None:
        """Start with nothing known."""
        self.body: Any = None
        self.status: int | None = None
        self.attempt = 0
        self.label = "ok"


async def _handle_provider(
    request: web.Request,
    handler: Handler,
    spec: ProviderSpec,
    state: ServerState,
    outcome: _Outcome,
) -> web.StreamResponse:
    """Apply auth, behaviour and latency, then call the provider handler.

    Args:
        request: The request.
        handler: The provider's success handler.
        spec: The provider.
        state: The server state.
        outcome: Filled in with what happened.

    Returns:
        The response to send.
    """
    config = state.config
    raw = await request.read()
    if request.content_type.startswith("multipart/"):
        # a file upload: its handler parses the body (aiohttp keeps the bytes read here)
        body, parsed = None, True
    else:
        body, parsed = parse_body(raw)
    outcome.body = body
    if not parsed:
        await asyncio.sleep(config.latency_s)
        outcome.label = "invalid"
        return error_response(spec, 400, "We could not parse the JSON body of your request.")
    if config.require_api_key is not None and spec.api_key(request) != config.require_api_key:
        await asyncio.sleep(config.latency_s)
        outcome.label = "auth"
        return error_response(spec, 401, _auth_error(request, spec, config))
    content = spec.key_text(body)
    outcome.attempt = state.next_attempt(content)
    try:
        decision = decide(content, outcome.attempt, config.faults, config.seed)
    except MarkerError as exc:
        outcome.label = "invalid"
        return error_response(spec, 400, f"Invalid fake-server marker: {exc}")
    delay = config.latency_s + decision.delay_s
    if delay > 0:
        await asyncio.sleep(delay)
    outcome.label = decision.outcome
    return await _act(
        request,
        handler,
        spec,
        decision,
        RequestContext(
            provider=spec.name, body=body, decision=decision, config=config, attempt=outcome.attempt
        ),
    )


def _auth_error(request: web.Request, spec: ProviderSpec, config: ConfigSnapshot) -> str:
    """The message of a 401: it echoes the credentials sent when the server is told to.

    Args:
        request: The refused request.
        spec: Its provider.
        config: The server configuration.

    Returns:
        The message.
    """
    if not config.echo_key_in_errors:
        return "Incorrect API key provided."
    sent = request.headers.get("Authorization") or spec.api_key(request) or ""
    return f"Invalid credentials: {sent}"


async def _act(
    request: web.Request,
    handler: Handler,
    spec: ProviderSpec,
    decision: Decision,
    context: RequestContext,
) -> web.StreamResponse:
    """Carry out a decision.

    Args:
        request: The request.
        handler: The provider's success handler.
        spec: The provider.
        decision: The decision.
        context: Context for the provider handler.

    Returns:
        The response to send (a placeholder when the connection is dropped).
    """
    if decision.drop:
        return drop_connection(request)
    if decision.status is not None:
        message = f"Simulated error {decision.status} from the fake server ({decision.source})."
        return error_response(spec, decision.status, message, decision.retry_after)
    if decision.malformed:
        return web.Response(status=200, body=MALFORMED_BODY, content_type="application/json")
    set_context(request, context)
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception as exc:
        LOGGER.exception("Fake-server provider handler failed")
        return error_response(spec, 500, f"Fake server bug: {type(exc).__name__}: {exc}")


def _record(
    request: web.Request, spec: ProviderSpec | None, start: float, outcome: _Outcome
) -> RecordedRequest:
    """Build the record of a finished request.

    Args:
        request: The request.
        spec: Its provider, or None for unknown routes.
        start: Monotonic start time.
        outcome: What happened.

    Returns:
        The record.
    """
    return RecordedRequest(
        provider=spec.name if spec is not None else "unknown",
        method=request.method,
        path=request.path,
        query=dict(request.query),
        headers={name.lower(): value for name, value in request.headers.items()},
        body=outcome.body,
        start=start,
        end=time.monotonic(),
        status=outcome.status,
        attempt=outcome.attempt,
        outcome=outcome.label,
    )


def make_recording_middleware(state: ServerState) -> Any:
    """Create the recording middleware bound to a state.

    Args:
        state: The server state.

    Returns:
        An aiohttp middleware.
    """

    @web.middleware
    async def recording_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_control_path(request.path):
            return await handler(request)
        spec = state.providers.provider_for(request.match_info.route)
        token = state.begin_request()
        outcome = _Outcome()
        try:
            if spec is None:
                response = await handler(request)
            else:
                response = await _handle_provider(request, handler, spec, state, outcome)
                response.headers.setdefault("x-request-id", f"req_{uuid.uuid4().hex}")
            dropped = outcome.label == "drop"
            outcome.status = None if dropped else response.status
            if outcome.label == "ok" and response.status >= 400:
                outcome.label = "invalid"
            return response
        except web.HTTPException as exc:
            outcome.status = exc.status
            outcome.label = "invalid"
            raise
        except asyncio.CancelledError:
            outcome.label = "cancelled"
            raise
        finally:
            state.finish_request(token, _record(request, spec, token.start, outcome))

    return recording_middleware
