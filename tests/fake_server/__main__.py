"""Run the fake server in the foreground.

Usage::

    python -m tests.fake_server --port 0 [--latency 0.1] [--host 127.0.0.1]

Prints exactly one line ``FAKE_SERVER_URL=http://HOST:PORT`` to stdout once
listening, then serves until interrupted (SIGINT or SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence

from .server import DEFAULT_HOST, serve_forever
from .state import ServerState


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse command-line arguments.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` by default.

    Returns:
        The parsed arguments.
    """
    parser = argparse.ArgumentParser(prog="python -m tests.fake_server", description=__doc__)
    parser.add_argument("--host", default=DEFAULT_HOST, help="interface to bind")
    parser.add_argument("--port", type=int, default=0, help="port to bind (0: any free port)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault draw")
    parser.add_argument(
        "--api-key", default="test-key", help="required API key ('' accepts any key)"
    )
    return parser.parse_args(argv)


def announce(url: str) -> None:
    """Print the URL line the parent process waits for.

    Args:
        url: The server's base URL.
    """
    sys.stdout.write(f"FAKE_SERVER_URL={url}\n")
    sys.stdout.flush()


async def run(args: argparse.Namespace) -> None:
    """Serve until SIGINT or SIGTERM.

    Args:
        args: Parsed command-line arguments.
    """
    state = ServerState(
        latency_s=args.latency, seed=args.seed, require_api_key=args.api_key or None
    )
    task = asyncio.ensure_future(serve_forever(state, args.host, args.port, announce))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point.

    Args:
        argv: Arguments without the program name.
    """
    asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    main()
