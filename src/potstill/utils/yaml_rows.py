"""Writing YAML that holds a large inline dataset (e.g. `LoadDataFromDicts(data=...)`) fast.

PyYAML represents every value as a node before it writes anything: about 10 µs and several
objects per row, so the `pipeline.yaml` of a run over 100,000 inline rows took a second to
write and held every node in memory meanwhile. Here each long list of rows (a mapping value
holding at least `MIN_ROWS` dicts) is written one row per line, in YAML's flow style
(`- {"instruction": "Say hi", "n": 1}`); the rest of the document is written by PyYAML as
before. Reading the file back gives the same values. A list holding a value this writer does
not know (anything but dicts, lists, strings, numbers, booleans and `None`, or a dict key that
is not a string) is left to PyYAML.
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import IO, Any, Callable, Optional

import yaml

MIN_ROWS = 1000
"""Lists of fewer rows are written by PyYAML (in block style, like the rest)."""

# A plain scalar PyYAML writes as it is, standing for a list of rows until it is spliced in.
_TOKEN = f"potstill_rows_{os.urandom(6).hex()}_"
# Characters a YAML reader refuses in a stream, and line breaks YAML 1.1 folds inside a
# quoted scalar: written as `\u` escapes.
_RAW_UNSAFE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
_SURROGATE = re.compile("[\ud800-\udfff]")
_QUOTE = json.JSONEncoder(ensure_ascii=False).encode
# Where a mapping key starts on its line: after the indentation and sequence entries' `- `.
_INDENT = re.compile(r"(?: *- )* *")


def dump_yaml(data: Any, stream: IO[str], **options: Any) -> None:
    """`yaml.dump(data, stream, **options)`, with long lists of rows one row per line.

    Args:
        data: the document.
        stream: where to write it.
        **options: PyYAML's `dump` options (`Dumper`, `default_flow_style`, ...).
    """
    lists: list[list[Any]] = []
    skeleton = _with_placeholders(data, lists)
    if not lists:
        yaml.dump(data, stream, **options)
        return
    rows = [[_flow(row) for row in found] for found in lists]
    if any(None in written for written in rows):  # a value left to PyYAML
        yaml.dump(data, stream, **options)
        return
    lines = yaml.dump(skeleton, **options).split("\n")
    spliced = [_placeholder(line) for line in lines]
    if sorted(number for number in spliced if number is not None) != list(range(len(rows))):
        yaml.dump(data, stream, **options)  # a token PyYAML did not write as `key: token`
        return
    for line, number in zip(lines[:-1], spliced):
        if number is None:
            stream.write(f"{line}\n")
            continue
        key, _, _ = line.rpartition(": ")
        stream.write(f"{key}:\n")
        indent = " " * len(_INDENT.match(key).group()) + "- "  # type: ignore[union-attr]
        stream.writelines(f"{indent}{row}\n" for row in rows[number])
    stream.write(lines[-1])


def _placeholder(line: str) -> Optional[int]:
    """The number of the list of rows a line of the skeleton stands for, if it does."""
    key, separator, value = line.rpartition(": ")
    if not separator or not value.startswith(_TOKEN) or not key.strip(" -"):
        return None
    return int(value[len(_TOKEN) :])


def _with_placeholders(value: Any, lists: list[list[Any]]) -> Any:
    """`value` with each long list of rows that is a mapping value replaced by a token
    (containers on the way are copied; the lists found are appended to `lists`)."""
    if isinstance(value, dict):
        copied = {}
        for key, item in value.items():
            if (
                isinstance(item, list)
                and len(item) >= MIN_ROWS
                and all(isinstance(row, dict) for row in item)
            ):
                copied[key] = f"{_TOKEN}{len(lists)}"
                lists.append(item)
            else:
                copied[key] = _with_placeholders(item, lists)
        return copied
    if isinstance(value, list):
        return [
            _with_placeholders(item, lists) if isinstance(item, (dict, list)) else item
            for item in value
        ]
    return value


def _flow(value: Any) -> Optional[str]:
    """A value in YAML's flow style (JSON's syntax, floats and escapes as YAML reads them),
    or `None` for a value left to PyYAML."""
    write = _WRITERS.get(type(value))
    return write(value) if write is not None else None


def _flow_str(value: str) -> Optional[str]:
    text = _QUOTE(value)
    if _RAW_UNSAFE.search(text) is None:
        return text
    if _SURROGATE.search(value) is not None:  # not text: PyYAML reports it as it would
        return None
    return _RAW_UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def _flow_float(value: float) -> str:
    """As PyYAML writes a float (YAML 1.1 reads `1e+20` as text, `1.0e+20` as a float)."""
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value).lower()
    if "." not in text and "e" in text:
        text = text.replace("e", ".0e", 1)
    return text


def _flow_dict(value: dict[Any, Any]) -> Optional[str]:
    items = []
    for key, item in value.items():
        key_text = _flow_str(key) if type(key) is str else None
        written = _flow(item)
        if key_text is None or written is None:
            return None
        items.append(f"{key_text}: {written}")
    return "{" + ", ".join(items) + "}"


def _flow_list(value: list[Any]) -> Optional[str]:
    items = [_flow(item) for item in value]
    return None if None in items else "[" + ", ".join(items) + "]"  # type: ignore[arg-type]


_WRITERS: dict[type, Callable[[Any], Optional[str]]] = {
    str: _flow_str,
    int: str,
    bool: lambda value: "true" if value else "false",
    type(None): lambda value: "null",
    float: _flow_float,
    dict: _flow_dict,
    list: _flow_list,
    tuple: _flow_list,
}
