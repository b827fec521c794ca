"""Logging setup: rich output for potstill's loggers, quiet HTTP clients."""

from __future__ import annotations

import logging
import os
from typing import Any

_console: Any = None

_NOISY_LOGGERS = ("httpx", "httpx2", "httpcore", "openai", "anthropic", "datasets", "filelock")


def console() -> Any:
    """The rich console (on stderr) shared by log messages and progress bars."""
    global _console
    if _console is None:
        from rich.console import Console

        _console = Console(stderr=True)
    return _console


def setup_logging(level: str | int | None = None) -> None:
    """Gives the `potstill` logger a rich handler, unless logging is configured already.

    Args:
        level: the level for potstill's loggers; defaults to `$POTSTILL_LOG_LEVEL` or INFO.
    """
    logger = logging.getLogger("potstill")
    chosen = level or os.environ.get("POTSTILL_LOG_LEVEL", "INFO")
    logger.setLevel(chosen.upper() if isinstance(chosen, str) else chosen)
    for name in _NOISY_LOGGERS:
        noisy = logging.getLogger(name)
        if noisy.level == logging.NOTSET:
            noisy.setLevel(logging.WARNING)
    if logger.handlers or logging.getLogger().handlers:
        return
    from rich.logging import RichHandler

    handler = RichHandler(console=console(), show_path=False, rich_tracebacks=False, markup=False)
    handler.setFormatter(logging.Formatter("%(message)s", datefmt="[%X]"))
    logger.addHandler(handler)
