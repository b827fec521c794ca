"""Azure OpenAI's Files and Batches APIs: OpenAI's (``openai_batches``) at Azure's paths.

* ``POST/GET /openai/files``, ``GET/DELETE /openai/files/{id}``,
  ``GET /openai/files/{id}/content``
* ``POST/GET /openai/batches``, ``GET /openai/batches/{id}``,
  ``POST /openai/batches/{id}/cancel``

Every route needs the ``api-version`` query parameter, and the key in ``api-key`` (as for
:mod:`tests.fake_server.azure_openai`). A batch runs the endpoint ``/chat/completions`` (the
``url`` of each input line too), each request's ``model`` naming a deployment. Jobs and
their behaviour are OpenAI's, kept apart from OpenAI's own jobs.
"""

from __future__ import annotations

from aiohttp import web

from .azure_openai import PROVIDER, missing_api_version
from .openai_batches import batch_routes, file_routes
from .registry import Handler
from .state import ServerState

PREFIX = "/openai"
ENDPOINT = "/chat/completions"


def needs_api_version(handler: Handler) -> Handler:
    """Refuse a request without ``api-version`` as Azure does (404).

    Args:
        handler: The route's handler.

    Returns:
        The handler, behind the check.
    """

    async def checked(request: web.Request) -> web.StreamResponse:
        return missing_api_version(request) or await handler(request)

    return checked


def register(router: web.UrlDispatcher, server: ServerState) -> None:
    """Add the Files and Batches routes to the ``azure`` provider (registered by
    :mod:`tests.fake_server.azure_openai`, which must come first).

    Args:
        router: The application's router.
        server: The server state.
    """
    routes = {
        **file_routes(server, PREFIX),
        **batch_routes(server, PROVIDER, PREFIX, ENDPOINT),
    }
    for (method, path), handler in routes.items():
        server.providers.add_route(router, method, path, needs_api_version(handler), PROVIDER)
