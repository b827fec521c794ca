"""Build a JSON value that satisfies a (simple) JSON schema.

Supports what structured-output clients usually send: objects with properties,
arrays, scalars, ``enum``/``const``, ``anyOf``/``oneOf``/``allOf`` and local
``$ref`` pointers into ``$defs``/``definitions``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_DEPTH = 8


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow a local ``$ref`` such as ``#/$defs/Item``.

    Args:
        schema: A schema node that may hold a ``$ref``.
        root: The root schema the pointer is relative to.

    Returns:
        The referenced node, or ``schema`` itself when it has no resolvable ``$ref``.
    """
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return schema
    node: Any = root
    for part in ref[2:].split("/"):
        if not isinstance(node, Mapping) or part not in node:
            return schema
        node = node[part]
    return node if isinstance(node, Mapping) else schema


def _fill(schema: Mapping[str, Any], root: Mapping[str, Any], text: str, depth: int) -> Any:
    """Recursive worker of :func:`fill_schema`.

    Args:
        schema: The current schema node.
        root: The root schema (for ``$ref``).
        text: The text used for string values.
        depth: Current recursion depth.

    Returns:
        A value matching ``schema``.
    """
    schema = _resolve(schema, root)
    if depth > MAX_DEPTH:
        return None
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            concrete = [o for o in options if isinstance(o, Mapping) and o.get("type") != "null"]
            return _fill(concrete[0] if concrete else options[0], root, text, depth + 1)
    if isinstance(schema.get("allOf"), list) and schema["allOf"]:
        return _fill(schema["allOf"][0], root, text, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties") or {}
        return {
            name: _fill(sub, root, text, depth + 1)
            for name, sub in properties.items()
            if isinstance(sub, Mapping)
        }
    if kind == "array":
        items = schema.get("items")
        count = max(int(schema.get("minItems", 1)), 1)
        if not isinstance(items, Mapping):
            return [text] * count
        return [_fill(items, root, text, depth + 1) for _ in range(count)]
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1.0))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return text


def fill_schema(schema: Mapping[str, Any], text: str) -> Any:
    """Build a deterministic value matching ``schema``.

    Args:
        schema: A JSON schema. A schema with no usable structure yields ``{"answer": text}``.
        text: The text put into string fields.

    Returns:
        The value (an object for object schemas).
    """
    if not schema.get("properties") and not schema.get("$ref") and not schema.get("type"):
        return {"answer": text}
    return _fill(schema, schema, text, 0)
