"""Running the fake server: in a background thread (:class:`FakeServer`) or in the foreground."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from aiohttp import web

from .app import build_app
from .state import RecordedRequest, ServerState

DEFAULT_HOST = "127.0.0.1"
# Handlers still running at shutdown get this long before they are cancelled.
SHUTDOWN_TIMEOUT_S = 0.5
# Enough for bursts of hundreds of simultaneous connects.
BACKLOG = 2048
START_TIMEOUT_S = 15.0


async def start_runner(state: ServerState, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Build the app and start listening.

    Args:
        state: The server state.
        host: Interface to bind.
        port: Port to bind; 0 picks a free one.

    Returns:
        The started runner (call ``cleanup()`` to stop) and the bound port.
    """
    runner = web.AppRunner(
        build_app(state),
        access_log=None,
        handle_signals=False,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=BACKLOG, reuse_address=True)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_port = int(runner.addresses[0][1])
    return runner, bound_port


def wait_until_accepting(host: str, port: int, timeout_s: float = START_TIMEOUT_S) -> None:
    """Block until a TCP connect to (host, port) succeeds.

    Args:
        host: Host to connect to.
        port: Port to connect to.
        timeout_s: Give up after this long.

    Raises:
        TimeoutError: If the port does not accept connections in time.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"Fake server on {host}:{port} refused connections") from exc
            time.sleep(0.01)


def _cancel_leftover_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel and await tasks still pending on a loop that is about to close.

    Args:
        loop: The stopped loop.
    """
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))


class FakeServer:
    """A fake LLM API server running in a background thread.

    Use as a context manager::

        with FakeServer() as server:
            client = openai.OpenAI(base_url=server.openai_base_url, api_key="test-key")

    Attributes:
        state: Configuration and recordings (shared with the server thread).
        host: Bound interface.
    """

    def __init__(
        self,
        state: ServerState | None = None,
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        **config: Any,
    ) -> None:
        """Create a stopped server.

        Args:
            state: State to use; a fresh one by default.
            host: Interface to bind.
            port: Port to bind; 0 (default) lets the OS pick a free one.
            **config: Initial configuration, as for :meth:`ServerState.configure`.
        """
        self.state = state if state is not None else ServerState()
        if config:
            self.state.configure(**config)
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> FakeServer:
        """Start serving and wait until the port accepts connections.

        Returns:
            The server itself.

        Raises:
            RuntimeError: If the server is already running or failed to start.
        """
        if self._thread is not None:
            raise RuntimeError("FakeServer is already running")
        self._ready.clear()
        self._startup_error = None
        self._thread = threading.Thread(target=self._serve, name="fake-llm-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S) or self._startup_error is not None:
            self._thread.join(START_TIMEOUT_S)
            self._thread = None
            raise RuntimeError("FakeServer failed to start") from self._startup_error
        wait_until_accepting(self.host, self.port)
        return self

    def stop(self) -> None:
        """Stop serving, close every connection and join the server thread."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        self._thread = None
        self._loop = None

    def _serve(self) -> None:
        """Thread body: run the event loop until :meth:`stop`."""
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            runner, self._port = loop.run_until_complete(
                start_runner(self.state, self.host, self._requested_port)
            )
        except BaseException as exc:
            self._startup_error = exc
            self._ready.set()
            loop.close()
            return
        self._loop = loop
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            _cancel_leftover_tasks(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def __enter__(self) -> FakeServer:
        """Start the server.

        Returns:
            The started server.
        """
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the server.

        Args:
            exc_type: Exception type, if any.
            exc: Exception, if any.
            traceback: Traceback, if any.
        """
        self.stop()

    # -- addresses -----------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port.

        Raises:
            RuntimeError: If the server has not started.
        """
        if self._port is None:
            raise RuntimeError("FakeServer is not running")
        return self._port

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """Base URL for the ``openai`` SDK (``url`` + ``/v1``)."""
        return f"{self.url}/v1"

    # -- passthroughs ----------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the recorded requests."""
        return self.state.requests

    def configure(self, **kwargs: Any) -> None:
        """Update configuration, as :meth:`ServerState.configure`.

        Args:
            **kwargs: Configuration fields.
        """
        self.state.configure(**kwargs)

    def reset(self) -> None:
        """Clear recordings and restore the default configuration."""
        self.state.reset()


async def serve_forever(
    state: ServerState, host: str, port: int, on_ready: Callable[[str], None]
) -> None:
    """Serve in the current event loop until cancelled.

    Args:
        state: The server state.
        host: Interface to bind.
        port: Port to bind; 0 picks a free one.
        on_ready: Called with the base URL once listening.
    """
    runner, bound_port = await start_runner(state, host, port)
    try:
        on_ready(f"http://{host}:{bound_port}")
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
