"""A pydantic validator built from a JSON schema, for checking structured output.

A structured output given as a pydantic model is validated with that model; one given as a
JSON schema dict is validated with the `TypeAdapter` that `schema_validator` builds here. It
covers what structured-output schemas use: `type` (one or a list), `properties`,
`required`, `additionalProperties`, `items`, `enum`, `const`, `anyOf`/`oneOf`,
`allOf` (merged), local `$ref`s into `$defs`/`definitions`, and the usual bounds
(`minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`, `minLength`, `maxLength`,
`pattern`, `minItems`, `maxItems`). Scalars are strict (a JSON string `"5"` is not an
integer). A keyword it does not know constrains nothing (the answer is not rejected for it),
and a recursive `$ref` accepts any value below the first level of recursion.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, TypeAdapter
from pydantic import create_model as _create_model

_BOUNDS = {"minimum": "ge", "maximum": "le", "exclusiveMinimum": "gt", "exclusiveMaximum": "lt"}


def schema_validator(schema: Mapping[str, Any]) -> TypeAdapter[Any]:
    """The validator of JSON values that match `schema`.

    Args:
        schema: a JSON schema (a dict).

    Returns:
        A `TypeAdapter`; its `validate_json` raises a `ValidationError` for a text that is
        not JSON or does not match, and `dump_python(value, by_alias=True,
        exclude_unset=True)` gives the value back as plain JSON data.
    """
    return TypeAdapter(_Builder(schema).annotation(schema, "Output"))


class _Builder:
    """Turns the nodes of one schema into type annotations (see the module docstring)."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self.resolving: set[str] = set()
        self.models = 0

    def annotation(self, node: Any, name: str) -> Any:
        if node is True or not isinstance(node, Mapping):
            return Any
        ref = node.get("$ref")
        if isinstance(ref, str):
            return self._reference(ref, name)
        if "allOf" in node:
            return self.annotation(_merged(node), name)
        if "const" in node:
            return Literal[node["const"]]  # type: ignore[valid-type]
        if isinstance(node.get("enum"), list) and node["enum"]:
            return Literal[tuple(node["enum"])]  # type: ignore[valid-type]
        options = node.get("anyOf") or node.get("oneOf")
        if isinstance(options, list) and options:
            return _union([self.annotation(option, name) for option in options])
        kind = node.get("type")
        if isinstance(kind, list):
            return _union([self.annotation({**node, "type": one}, name) for one in kind])
        if kind == "object" or (kind is None and "properties" in node):
            return self._object(node, name)
        if kind == "array":
            item = self.annotation(node.get("items", True), f"{name}Item")
            bounds = _constraints(node, min_length="minItems", max_length="maxItems")
            return Annotated[list[item], bounds]  # type: ignore[valid-type]
        if kind == "string":
            return Annotated[StrictStr, _string_constraints(node)]
        if kind == "integer":
            return Annotated[StrictInt, _number_constraints(node)]
        if kind == "number":
            return Annotated[Union[StrictInt, StrictFloat], _number_constraints(node)]
        if kind == "boolean":
            return StrictBool
        if kind == "null":
            return None
        return Any

    def _reference(self, ref: str, name: str) -> Any:
        if ref in self.resolving:  # recursion: anything below this level
            return Any
        target = _pointer(self.root, ref)
        if target is None:
            return Any
        self.resolving.add(ref)
        try:
            return self.annotation(target, ref.rsplit("/", 1)[-1] or name)
        finally:
            self.resolving.discard(ref)

    def _object(self, node: Mapping[str, Any], name: str) -> Any:
        properties = node.get("properties") or {}
        extra = node.get("additionalProperties", True)
        if not properties:
            if extra is False:
                return Annotated[dict[str, Any], Field(max_length=0)]
            return dict[str, self.annotation(extra, f"{name}Value")]  # type: ignore[misc]
        required = set(node.get("required") or [])
        fields: dict[str, Any] = {}
        for index, (key, subschema) in enumerate(properties.items()):
            annotation = self.annotation(subschema, f"{name}{_title(key)}")
            # Every property gets a neutral field name and its JSON name as the alias, so that
            # any name works (`model_config`, `123`, `a-b`).
            if key in required:
                fields[f"field_{index}"] = (annotation, Field(alias=key))
            else:
                fields[f"field_{index}"] = (Optional[annotation], Field(None, alias=key))
        self.models += 1
        config = ConfigDict(extra="forbid" if extra is False else "allow", populate_by_name=False)
        return _create_model(  # type: ignore[call-overload]
            f"{_title(name)}{self.models}", __config__=config, **fields
        )


def _union(annotations: list[Any]) -> Any:
    unique = list(dict.fromkeys(annotations))
    return unique[0] if len(unique) == 1 else Union[tuple(unique)]


def _merged(node: Mapping[str, Any]) -> dict[str, Any]:
    """`allOf` folded into one schema (properties and `required` joined)."""
    merged: dict[str, Any] = {key: value for key, value in node.items() if key != "allOf"}
    for part in node.get("allOf") or []:
        if not isinstance(part, Mapping):
            continue
        for key, value in part.items():
            if key == "properties":
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required":
                merged["required"] = [*merged.get("required", []), *value]
            else:
                merged.setdefault(key, value)
    return merged


def _pointer(root: Mapping[str, Any], ref: str) -> Optional[Mapping[str, Any]]:
    if not ref.startswith("#"):
        return None
    node: Any = root
    for part in ref.lstrip("#").strip("/").split("/"):
        if not part:
            continue
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node if isinstance(node, Mapping) else None


def _constraints(node: Mapping[str, Any], **names: str) -> Any:
    values = {argument: node[key] for argument, key in names.items() if key in node}
    return Field(**values)


def _number_constraints(node: Mapping[str, Any]) -> Any:
    values = {
        argument: node[key]
        for key, argument in _BOUNDS.items()
        if isinstance(node.get(key), (int, float)) and not isinstance(node.get(key), bool)
    }
    return Field(**values)


def _string_constraints(node: Mapping[str, Any]) -> Any:
    values: dict[str, Any] = {}
    if isinstance(node.get("minLength"), int):
        values["min_length"] = node["minLength"]
    if isinstance(node.get("maxLength"), int):
        values["max_length"] = node["maxLength"]
    pattern = node.get("pattern")
    if isinstance(pattern, str) and _compiles(pattern):
        values["pattern"] = pattern
    return Field(**values)


def _compiles(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


def _title(name: str) -> str:
    words = re.findall(r"[A-Za-z0-9]+", name)
    return "".join(word[:1].upper() + word[1:] for word in words) or "Value"
