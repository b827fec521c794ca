"""A small parser for Google-style docstrings.

Runtime-parameter descriptions come from here: the `Args:` section of an LLM's
`generate`/`agenerate` describes its generation kwargs, and the `Attributes:` section
of a class describes its fields when a field has no `description` of its own.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from functools import lru_cache

_SECTION_ALIASES = {
    "args": "args",
    "arguments": "args",
    "parameters": "args",
    "params": "args",
    "attributes": "attributes",
    "runtime parameters": "attributes",
    "returns": "returns",
    "return": "returns",
    "yields": "returns",
    "raises": "raises",
    "examples": "examples",
    "example": "examples",
    "note": "notes",
    "notes": "notes",
}
_SECTION_RE = re.compile(r"^([A-Za-z][A-Za-z ]*):\s*$")
_ITEM_RE = re.compile(r"^(\*{0,2}[A-Za-z_][A-Za-z0-9_]*)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


@dataclass(frozen=True)
class Docstring:
    """The parts of a Google-style docstring that potstill uses.

    Attributes:
        summary: the first paragraph.
        args: argument name -> description, from `Args:`.
        attributes: attribute name -> description, from `Attributes:` or `Runtime parameters:`.
        returns: the text of the `Returns:` section.
    """

    summary: str = ""
    args: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)
    returns: str = ""


def parse_google_docstring(obj: object) -> Docstring:
    """Parses the docstring of a function, method or class.

    Args:
        obj: anything `inspect.getdoc` accepts.

    Returns:
        The parsed docstring; empty parts when there is no docstring.
    """
    return _parse(inspect.getdoc(obj) or "")


@lru_cache(maxsize=512)
def _parse(text: str) -> Docstring:
    summary_lines: list[str] = []
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for raw_line in text.splitlines():
        header = _SECTION_RE.match(raw_line)
        if header and not raw_line.startswith(" "):
            current = _SECTION_ALIASES.get(header.group(1).strip().lower(), "other")
            sections.setdefault(current, [])
            continue
        if current is None:
            summary_lines.append(raw_line)
        else:
            sections[current].append(raw_line)
    summary = " ".join(line.strip() for line in _first_paragraph(summary_lines))
    return Docstring(
        summary=summary,
        args=_parse_items(sections.get("args", [])),
        attributes=_parse_items(sections.get("attributes", [])),
        returns=" ".join(line.strip() for line in sections.get("returns", []) if line.strip()),
    )


def _first_paragraph(lines: list[str]) -> list[str]:
    paragraph: list[str] = []
    for line in lines:
        if not line.strip():
            if paragraph:
                break
            continue
        paragraph.append(line)
    return paragraph


def _parse_items(lines: list[str]) -> dict[str, str]:
    """Parses `name (type): description` items, joining continuation lines."""
    items: dict[str, str] = {}
    indent: int | None = None
    name: str | None = None
    for line in lines:
        if not line.strip():
            continue
        this_indent = len(line) - len(line.lstrip())
        if indent is None:
            indent = this_indent
        match = _ITEM_RE.match(line.strip()) if this_indent <= indent else None
        if match:
            name = match.group(1).lstrip("*")
            items[name] = match.group(2).strip()
        elif name is not None:
            items[name] = f"{items[name]} {line.strip()}".strip()
    return items
