"""Assembly of the aiohttp application: control routes, provider plug-ins, middleware.

To add a provider, write ``tests/fake_server/<name>.py`` with a
``register(router, server)`` function (see :mod:`tests.fake_server.openai_chat`)
and append ``"<name>"`` to :data:`PROVIDER_MODULES`.
"""

from __future__ import annotations

import importlib

from aiohttp import web

from .control import register_control
from .middleware import make_recording_middleware
from .state import ServerState

PROVIDER_MODULES: list[str] = [
    "openai_chat",
    "openai_completions",
    "anthropic_messages",
    "cohere_chat",
    "tgi",
    "ollama_chat",
    "vertex_generate",
    "azure_openai",
    "groq_chat",
    "mistral_chat",
    # after openai_chat and anthropic_messages, whose providers their routes join
    "openai_batches",
    "anthropic_batches",
    "azure_batches",  # after azure_openai and openai_batches
]

# Request bodies of large batch prompts can exceed aiohttp's 1 MiB default.
CLIENT_MAX_SIZE = 64 * 1024 * 1024


def register_providers(router: web.UrlDispatcher, state: ServerState) -> None:
    """Import every module in :data:`PROVIDER_MODULES` and call its ``register``.

    Args:
        router: The application's router.
        state: The server state passed to each ``register``.
    """
    for name in PROVIDER_MODULES:
        module = importlib.import_module(f"{__package__}.{name}")
        module.register(router, state)


def build_app(state: ServerState) -> web.Application:
    """Build the fake server application.

    Args:
        state: Configuration and recordings shared with the caller.

    Returns:
        The application, ready for an ``AppRunner``.
    """
    app = web.Application(
        middlewares=[make_recording_middleware(state)], client_max_size=CLIENT_MAX_SIZE
    )
    register_control(app.router, state)
    register_providers(app.router, state)
    return app
