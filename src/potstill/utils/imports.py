"""Importing optional dependencies with an error that says which extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str) -> ModuleType:
    """Imports an optional dependency.

    Args:
        module: the module to import, e.g. `openai`.
        extra: the potstill extra that installs it, e.g. `openai`.

    Returns:
        The module.

    Raises:
        ImportError: saying which `pip install` command fixes it.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"`{module}` is not installed, and it is needed here. Install it with "
            f"`pip install 'potstill[{extra}]'`."
        ) from error
