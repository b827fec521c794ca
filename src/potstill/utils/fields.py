"""Inspecting pydantic fields."""

from __future__ import annotations

import typing
from typing import Any

from pydantic import SecretStr
from pydantic.fields import FieldInfo


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
