"""Control API under ``/_control/`` for driving a server that runs in another process.

* ``GET  /_control/config``   current configuration
* ``POST /_control/config``   update configuration (JSON object of fields; faults as dicts)
* ``POST /_control/reset``    clear recordings and restore the default configuration
* ``GET  /_control/stats``    counters; ``?window=1.0`` adds ``max_requests_in_window``
* ``GET  /_control/requests`` recorded requests as JSON
"""

from __future__ import annotations

import json

from aiohttp import web

from .state import ServerState


def _bad_request(message: str) -> web.Response:
    """Build a control-API error response.

    Args:
        message: What went wrong.

    Returns:
        A 400 JSON response ``{"error": message}``.
    """
    return web.json_response({"error": message}, status=400)


def register_control(router: web.UrlDispatcher, state: ServerState) -> None:
    """Add the control routes.

    Args:
        router: The application's router.
        state: The state the routes read and change.
    """

    async def get_config(request: web.Request) -> web.Response:
        return web.json_response(state.config.to_json())

    async def post_config(request: web.Request) -> web.Response:
        try:
            changes = await request.json()
        except json.JSONDecodeError:
            return _bad_request("Body must be a JSON object")
        if not isinstance(changes, dict):
            return _bad_request("Body must be a JSON object")
        try:
            state.configure(**changes)
        except (TypeError, ValueError) as exc:
            return _bad_request(str(exc))
        return web.json_response(state.config.to_json())

    async def post_reset(request: web.Request) -> web.Response:
        state.reset()
        return web.json_response({"ok": True})

    async def get_stats(request: web.Request) -> web.Response:
        raw = request.query.get("window")
        try:
            window = float(raw) if raw is not None else None
            return web.json_response(state.stats(window))
        except ValueError as exc:
            return _bad_request(f"Bad window: {exc}")

    async def get_requests(request: web.Request) -> web.Response:
        return web.json_response([record.to_json() for record in state.requests])

    router.add_get("/_control/config", get_config)
    router.add_post("/_control/config", post_config)
    router.add_post("/_control/reset", post_reset)
    router.add_get("/_control/stats", get_stats)
    router.add_get("/_control/requests", get_requests)
