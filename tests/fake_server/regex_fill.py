"""Build a text that fully matches a (simple) regular expression, for TGI's regex grammar.

Supports what grammar patterns usually hold: literals, character classes and ranges,
``\\d``/``\\w``/``\\s``, ``.``, groups, alternation (the first branch) and repeats (their
minimum, at least once when the minimum is 0 and the maximum allows more). Anchors add
nothing. The text is deterministic.
"""

from __future__ import annotations

import re
from typing import Any

try:  # Python 3.11+
    from re import _parser as sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    import sre_parse  # type: ignore[no-redef]

_CATEGORY_CHARS = {
    "CATEGORY_DIGIT": "7",
    "CATEGORY_WORD": "a",
    "CATEGORY_SPACE": " ",
    "CATEGORY_NOT_DIGIT": "a",
    "CATEGORY_NOT_WORD": "-",
    "CATEGORY_NOT_SPACE": "a",
}


def fill_regex(pattern: str) -> str:
    """Build a text that ``re.fullmatch(pattern, text)`` accepts.

    Args:
        pattern: The regular expression.

    Returns:
        The text.

    Raises:
        ValueError: When the pattern uses what this sampler cannot follow, or the text it
            built does not match.
    """
    text = _fill(sre_parse.parse(pattern))
    if re.fullmatch(pattern, text) is None:
        raise ValueError(f"cannot build a text matching {pattern!r}")
    return text


def _fill(items: Any) -> str:
    return "".join(_item(op, argument) for op, argument in items)


def _item(op: Any, argument: Any) -> str:
    name = str(op)
    if name == "LITERAL":
        return chr(argument)
    if name == "ANY":
        return "a"
    if name == "NOT_LITERAL":
        return "a" if chr(argument) != "a" else "b"
    if name == "IN":
        return _in(argument)
    if name == "SUBPATTERN":
        return _fill(argument[-1])
    if name == "BRANCH":
        return _fill(argument[1][0])
    if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
        low, high, body = argument
        count = low if low > 0 or high == 0 else 1
        return _fill(body) * count
    if name in ("AT", "ASSERT", "ASSERT_NOT"):
        return ""
    if name == "CATEGORY":
        return _CATEGORY_CHARS.get(str(argument), "a")
    raise ValueError(f"unsupported regex element {name}")


def _in(items: Any) -> str:
    negated = any(str(op) == "NEGATE" for op, _ in items)
    for op, argument in items:
        name = str(op)
        if negated:
            break
        if name == "LITERAL":
            return chr(argument)
        if name == "RANGE":
            return chr(argument[0])
        if name == "CATEGORY":
            return _CATEGORY_CHARS.get(str(argument), "a")
    if negated:
        excluded = {chr(argument) for op, argument in items if str(op) == "LITERAL"}
        return next(char for char in "aZ7_ -" if char not in excluded)
    raise ValueError("unsupported character class")
