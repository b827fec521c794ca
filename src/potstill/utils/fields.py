"""Inspecting pydantic fields."""

from __future__ import annotations

import functools
import typing
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, SecretStr
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


@functools.cache
def execution_only_fields(model: type[BaseModel]) -> frozenset[str]:
    """The names of a model's fields that are marked `ExecutionOnly`.

    A field a subclass declares again keeps the marker of the class it overrides (a provider
    that changes the default of `max_retries` does not make it part of its answers).

    Args:
        model: the pydantic model class (an LLM class).

    Returns:
        The field names, plus `runtime_parameters_info` (the dump's descriptions of the
        runtime parameters, which change no answer either).
    """
    ancestors = [base for base in model.__mro__ if issubclass(base, BaseModel)]
    marked = {
        name
        for name in model.model_fields
        for base in ancestors
        if name in base.model_fields and is_execution_only(base.model_fields[name])
    }
    return frozenset(marked | {"runtime_parameters_info"})


def without_execution_fields(dump: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """An LLM's dump without its own execution-only fields (see `execution_only_fields`).

    Only the top level is filtered: a `timeout` key inside generation kwargs, a data row or a
    mapping is content, not an execution setting.

    Args:
        dump: the LLM's `dump()`.
        model: the LLM's class.

    Returns:
        A copy without those fields.
    """
    leave_out = execution_only_fields(model)
    return {key: value for key, value in dump.items() if key not in leave_out}
