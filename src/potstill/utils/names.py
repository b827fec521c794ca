"""Naming helpers: step-name inference, "did you mean" suggestions and finding a name in a
nested tree of names."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any

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


def locate(name: str, tree: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """Where a name is a key in a nested tree of names, shallowest first.

    Args:
        name: the name to look for.
        tree: name -> anything, or a nested tree (e.g. `runtime_parameters_names`).

    Returns:
        One path of keys per place, each ending in `name`.
    """
    found: list[tuple[str, ...]] = []
    pending: list[tuple[tuple[str, ...], Mapping[str, Any]]] = [((), tree)]
    while pending:  # breadth first, so shallower places come first
        path, node = pending.pop(0)
        for key, value in node.items():
            if key == name:
                found.append((*path, key))
            if isinstance(value, Mapping):
                pending.append(((*path, key), value))
    return found


def nest(path: Iterable[str], value: Any) -> Any:
    """`value` under the keys of `path`, outermost first: `nest(["a", "b"], 1)` is
    `{"a": {"b": 1}}`."""
    for key in reversed(list(path)):
        value = {key: value}
    return value
