"""Inspecting pydantic fields."""

from __future__ import annotations

import typing
from typing import Annotated, Any, TypeVar

from pydantic import SecretStr
from pydantic.fields import FieldInfo

_T = TypeVar("_T")


class _ExecutionOnlyMarker:
    """Annotation metadata: the field changes how an LLM runs, never what it answers."""

    def __repr__(self) -> str:
        return "EXECUTION_ONLY"


EXECUTION_ONLY = _ExecutionOnlyMarker()

ExecutionOnly = Annotated[_T, EXECUTION_ONLY]
"""A field that changes how an LLM runs but not what it produces (timeouts, limits, retries),
e.g. `timeout: ExecutionOnly[RuntimeParameter[PositiveFloat]] = 120.0`. Such fields are left
out of what identifies the LLM's answers (the response cache key and the step signature), so
changing them never invalidates stored answers."""


def is_execution_only(field: FieldInfo) -> bool:
    """Whether a field is marked `ExecutionOnly`.

    Args:
        field: the pydantic field.

    Returns:
        True when the field's metadata carries the marker.
    """
    return any(item is EXECUTION_ONLY for item in field.metadata) or _mentions_marker(
        field.annotation
    )


def _mentions_marker(annotation: Any) -> bool:
    if typing.get_origin(annotation) is Annotated and any(
        item is EXECUTION_ONLY for item in typing.get_args(annotation)[1:]
    ):
        return True
    return any(_mentions_marker(arg) for arg in typing.get_args(annotation))


def is_secret_field(field: FieldInfo) -> bool:
    """Whether a field holds a secret (`SecretStr` anywhere in its annotation).

    Args:
        field: the pydantic field.

    Returns:
        True for secrets, which are never dumped, logged or echoed in errors.
    """
    return _mentions_secret(field.annotation)


def _mentions_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    return any(_mentions_secret(arg) for arg in typing.get_args(annotation))


# Fields of an LLM that change how it runs but not what it produces.
EXECUTION_ONLY_FIELDS = frozenset(
    {
        "runtime_parameters_info",
        "max_concurrent_requests",
        "timeout",
        "max_retries",
        "max_retry_time",
        "refused_connection_retry_time",
        "retry_backoff",
        "requests_per_minute",
        "tokens_per_minute",
        "input_tokens_per_minute",
        "output_tokens_per_minute",
        "use_response_cache",
        "response_cache_dir",
    }
)


def without_execution_fields(dump: dict[str, Any]) -> dict[str, Any]:
    """An LLM's dump without its own fields in `EXECUTION_ONLY_FIELDS`.

    Only the top level is filtered: a `timeout` key inside generation kwargs, a data row or a
    mapping is content, not an execution setting.

    Args:
        dump: the LLM's `dump()`.

    Returns:
        A copy without those fields.
    """
    return {key: value for key, value in dump.items() if key not in EXECUTION_ONLY_FIELDS}
