"""Parsing of ``[[...]]`` behaviour markers embedded in prompt text.

A marker is a double-bracketed group of whitespace separated words. The first
word names the marker and may carry a value (``name=value``); the following
words are ``key=value`` options. Examples::

    [[delay=2.5]]
    [[status=429 retry_after=1.5]]
    [[fail_first=2 status=503]]
    [[drop]]
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MARKER_PATTERN = re.compile(r"\[\[([^\[\]]*)\]\]")


@dataclass(frozen=True)
class Marker:
    """One parsed marker.

    Attributes:
        name: The marker name, e.g. ``"status"``.
        value: The value attached to the name (``status=500`` -> ``"500"``), or None.
        options: The trailing ``key=value`` options.
    """

    name: str
    value: str | None = None
    options: dict[str, str] = field(default_factory=dict)


def _split_word(word: str) -> tuple[str, str | None]:
    """Split ``key=value`` into its parts.

    Args:
        word: One word of a marker.

    Returns:
        The lower-cased key and the value, or None when there is no ``=``.
    """
    key, sep, value = word.partition("=")
    return key.strip().lower(), (value.strip() if sep else None)


def parse_markers(text: str) -> list[Marker]:
    """Find every marker in ``text``.

    Args:
        text: Prompt text that may contain markers.

    Returns:
        The markers in order of appearance; empty groups (``[[]]``) are skipped.
    """
    markers: list[Marker] = []
    for match in MARKER_PATTERN.finditer(text):
        words = match.group(1).split()
        if not words:
            continue
        name, value = _split_word(words[0])
        options: dict[str, str] = {}
        for word in words[1:]:
            key, option_value = _split_word(word)
            options[key] = option_value if option_value is not None else ""
        markers.append(Marker(name=name, value=value, options=options))
    return markers


def strip_markers(text: str) -> str:
    """Remove every marker and normalise whitespace.

    Args:
        text: Prompt text that may contain markers.

    Returns:
        The text without markers, with runs of whitespace collapsed to one space.
    """
    return " ".join(MARKER_PATTERN.sub(" ", text).split())
