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
