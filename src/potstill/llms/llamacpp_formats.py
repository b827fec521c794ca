"""Structured output for `LlamaCppLLM`: the `response_format` values it takes, mapped to
llama-cpp-python's `{"type": "json_object", "schema"?}`, and JSON schemas from dicts, JSON
strings or pydantic models."""

from __future__ import annotations

import json
from typing import Any, Dict, Literal, Optional, Union

from pydantic import BaseModel

from potstill.errors import PotstillUserError

ResponseFormat = Union[Literal["text", "json", "json_object"], Dict[str, Any]]
"""What `LlamaCppLLM.generate` takes as `response_format`."""


def json_schema(schema: Any) -> dict[str, Any]:
    """A JSON schema dict from a dict, a JSON string or a pydantic model class."""
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return schema.model_json_schema()
    if isinstance(schema, str):
        schema = json.loads(schema)
    if not isinstance(schema, dict):
        raise ValueError(
            f"A JSON schema must be a dict, a JSON string or a pydantic model, got "
            f"{type(schema).__name__}."
        )
    return schema


def llama_response_format(value: ResponseFormat) -> Optional[dict[str, Any]]:
    """Maps a `response_format` to llama-cpp-python's `{"type": "json_object", "schema"?}`."""
    if isinstance(value, str):
        return None if value == "text" else {"type": "json_object"}
    kind = value.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        if "schema" in value:
            return {"type": "json_object", "schema": json_schema(value["schema"])}
        return {"type": "json_object"}
    if kind == "json_schema":
        spec = value.get("json_schema") or {}
        schema = spec.get("schema", spec) if isinstance(spec, dict) else spec
        return {"type": "json_object", "schema": json_schema(schema)}
    raise PotstillUserError(
        f"Unsupported response_format {value!r} for LlamaCppLLM: use 'text', 'json', "
        "{'type': 'json_object', 'schema': {...}} or {'type': 'json_schema', "
        "'json_schema': {'schema': {...}}}."
    )
