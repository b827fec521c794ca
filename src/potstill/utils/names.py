"""Naming helpers: step-name inference and "did you mean" suggestions."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake_case(name: str) -> str:
    """Converts `PascalCase` (or `camelCase`) to `snake_case`.

    Args:
        name: the name to convert, e.g. `TextGeneration`.

    Returns:
        The converted name, e.g. `text_generation`.
    """
    return _CAMEL_BOUNDARY.sub("_", name).lower()


def suggest(name: str, candidates: Iterable[str]) -> str:
    """Builds a "did you mean" hint for an unknown name.

    Args:
        name: the unknown name the user gave.
        candidates: the valid names.

    Returns:
        A sentence with the closest matches, or the list of valid names when none is close.
    """
    candidates = sorted(set(candidates))
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.5)
    if close:
        return "Did you mean " + " or ".join(repr(c) for c in close) + "?"
    if not candidates:
        return "There are none to choose from."
    return "Valid names are: " + ", ".join(repr(c) for c in candidates) + "."
