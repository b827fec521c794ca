"""Checks on rows before they are stored: invalid text and columns with mixed types.

Stored batches are Arrow tables, which hold UTF-8 text and one type per column. Two things in
Python data break that: text with lone surrogates (e.g. `'\\ud83d'`, half of an emoji cut by a
tokenizer), which is not valid UTF-8, and a column (or a key nested in one) that holds, say,
an `int` in one row and a `str` in another. The first is repaired (each lone surrogate becomes
U+FFFD, the replacement character); the second is reported with the column, the rows and the
types, because only the user knows which type is right.
"""

from __future__ import annotations

import numbers
import re
from typing import Any, Optional

_SURROGATE = re.compile("[\ud800-\udfff]")
_PREVIEW = 40


def valid_text(text: str) -> str:
    """`text` as valid Unicode: surrogate pairs joined, lone surrogates replaced by U+FFFD."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def without_invalid_text(value: Any, where: str = "", found: Optional[list[str]] = None) -> Any:
    """`value` with every string in it (keys too) made valid (see `valid_text`).

    Args:
        value: JSON-like data.
        where: the path of `value`, for `found`.
        found: collects the paths of the strings that were changed.

    Returns:
        The repaired data (the very object when nothing needed repair).
    """
    if isinstance(value, str):
        if _SURROGATE.search(value) is None:
            return value
        if found is not None:
            found.append(where)
        return valid_text(value)
    if isinstance(value, (list, tuple)):
        items = [
            without_invalid_text(item, f"{where}[{index}]", found)
            for index, item in enumerate(value)
        ]
        if all(new is old for new, old in zip(items, value)):
            return value
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        pairs = {
            without_invalid_text(key, f"{where} (a key)", found): without_invalid_text(
                item, f"{where}[{key!r}]", found
            )
            for key, item in value.items()
        }
        if len(pairs) == len(value) and all(
            key in value and pairs[key] is value[key] for key in pairs
        ):
            return value
        return pairs
    return value


def may_mix_types(rows: list[dict[str, Any]]) -> bool:
    """Whether some column might hold values Arrow cannot put in one column.

    A cheap first look (no Arrow): `False` when every column holds one plain type (or `int`
    and `float`), apart from `None`. Nested values or several types need a closer look.

    Args:
        rows: the rows.

    Returns:
        `False` when the rows surely fit one type per column.
    """
    columns = {key for row in rows for key in row}
    for column in columns:
        kinds = {type(row.get(column)) for row in rows}
        kinds.discard(type(None))
        if kinds <= {int, float} or (len(kinds) == 1 and kinds <= {str, bool, bytes}):
            continue
        return True
    return False


def find_type_conflict(rows: list[dict[str, Any]], first_row: int = 0) -> Optional[str]:
    """Describes the first column (or nested key) holding values of two different types.

    `int` and `float` count as one type (numbers), and `None` fits any type.

    Args:
        rows: the rows.
        first_row: the index of `rows[0]` in the dataset, for the message.

    Returns:
        E.g. `"column 'extra' holds int in row 0 (1) and str in row 7 ('x')"`, or `None`.
    """
    seen: dict[str, tuple[str, Any, int]] = {}
    for index, row in enumerate(rows, start=first_row):
        conflict = _walk(row, "", index, seen, top=True)
        if conflict is not None:
            return conflict
    return None


def _walk(
    value: Any, path: str, row: int, seen: dict[str, tuple[str, Any, int]], top: bool = False
) -> Optional[str]:
    if value is None:
        return None
    if not top:
        kind = _kind(value)
        first = seen.setdefault(path, (kind, value, row))
        if first[0] != kind:
            return (
                f"column {path!r} holds {type(first[1]).__name__} in row {first[2]} "
                f"({_preview(first[1])}) and {type(value).__name__} in row {row} "
                f"({_preview(value)})"
            )
    if isinstance(value, dict):
        for key, item in value.items():
            conflict = _walk(item, key if top else f"{path}.{key}", row, seen)
            if conflict is not None:
                return conflict
    elif isinstance(value, (list, tuple)):
        for item in value:
            conflict = _walk(item, f"{path}[]", row, seen)
            if conflict is not None:
                return conflict
    return None


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, numbers.Real):
        return "number"
    for kind in (str, bytes, dict, list, tuple):
        if isinstance(value, kind):
            return "list" if kind is tuple else kind.__name__
    return type(value).__name__


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _PREVIEW else text[: _PREVIEW - 3] + "..."
