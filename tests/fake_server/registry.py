"""Registry of provider plug-ins and of the routes each one serves.

A provider module calls :meth:`ProviderRegistry.add` once with its
:class:`ProviderSpec`, then declares each handler with
:meth:`ProviderRegistry.add_route`. The middleware looks up the matched route to
know which provider handles a request, how to format its errors, where its API
key lives and what its key content is.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class ProviderSpec:
    """How the middleware treats one provider's requests.

    Attributes:
        name: Provider name, recorded with each request (e.g. ``"openai"``).
        error_body: Builds the provider's JSON error body from (status, message).
        api_key: Extracts the API key the client sent, or None when missing.
        key_text: Extracts the key content (last user message text, markers included)
            from the parsed JSON body (which may be None or malformed).
    """

    name: str
    error_body: Callable[[int, str], dict[str, Any]]
    api_key: Callable[[web.Request], str | None]
    key_text: Callable[[Any], str]


class ProviderRegistry:
    """Provider specs by name, and the provider owning each route."""

    def __init__(self) -> None:
        """Create an empty registry."""
        self._lock = threading.Lock()
        self._specs: dict[str, ProviderSpec] = {}
        self._routes: dict[web.AbstractRoute, str] = {}

    def add(self, spec: ProviderSpec) -> None:
        """Register (or replace) a provider spec.

        Args:
            spec: The provider's spec.
        """
        with self._lock:
            self._specs[spec.name] = spec

    def get(self, name: str) -> ProviderSpec:
        """Return the spec of a registered provider.

        Args:
            name: The provider name.

        Returns:
            The spec.

        Raises:
            KeyError: If no provider of that name was registered.
        """
        with self._lock:
            return self._specs[name]

    @property
    def names(self) -> list[str]:
        """Names of the registered providers."""
        with self._lock:
            return sorted(self._specs)

    def add_route(
        self,
        router: web.UrlDispatcher,
        method: str,
        path: str,
        handler: Handler,
        provider: str,
    ) -> web.AbstractRoute:
        """Add a route whose requests belong to ``provider``.

        Args:
            router: The application's router.
            method: HTTP method, e.g. ``"POST"``.
            path: URL path, e.g. ``"/v1/chat/completions"``.
            handler: Coroutine producing the success response.
            provider: Name of an already registered provider.

        Returns:
            The created route.

        Raises:
            KeyError: If ``provider`` was not registered first.
        """
        self.get(provider)
        route = router.add_route(method, path, handler)
        with self._lock:
            self._routes[route] = provider
        return route

    def provider_for(self, route: web.AbstractRoute | None) -> ProviderSpec | None:
        """Return the spec of the provider owning ``route``.

        Args:
            route: The matched route, or None.

        Returns:
            The spec, or None for routes not added through :meth:`add_route`.
        """
        if route is None:
            return None
        with self._lock:
            name = self._routes.get(route)
            return None if name is None else self._specs.get(name)
