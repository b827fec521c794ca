"""Parsing `--param step.path.to.field=value` options into `Pipeline.run(params=...)`."""

from __future__ import annotations

import json
import re
from typing import Any

from potstill.errors import PotstillUserError
from potstill.utils.secrets import is_secret_name

__all__ = ["is_secret_name", "mask_param", "parse_runtime_parameters"]

# A dotted key with at least two parts (step and parameter), then `=` and the value.
_PARAM = re.compile(r"^(?P<key>[^.=\s]+(?:\.[^.=\s]+)+)=(?P<value>.*)$", re.DOTALL)


def parse_runtime_parameters(params: list[str]) -> dict[str, dict[str, Any]]:
    """Turns `--param` options into the nested dict `Pipeline.run(params=...)` takes.

    `text_generation_0.llm.generation_kwargs.temperature=0.3` becomes
    `{"text_generation_0": {"llm": {"generation_kwargs": {"temperature": "0.3"}}}}`. Values
    stay strings (pydantic and `validate_call` coerce them to each field's type), except
    that a value written as a JSON array or object (`[...]`, `{...}`) is decoded, so list
    and dict parameters can be given too.

    Args:
        params: the `--param` values, each `dotted.key=value`.

    Returns:
        Step name -> that step's (nested) runtime parameters.

    Raises:
        PotstillUserError: for a malformed option or two options that conflict.
    """
    nested: dict[str, Any] = {}
    for raw in params:
        match = _PARAM.match(raw.strip())
        if match is None:
            raise PotstillUserError(
                f"Invalid --param {mask_param(raw)!r}: expected STEP.PARAMETER=VALUE, e.g. "
                "--param text_generation_0.llm.generation_kwargs.temperature=0.7"
            )
        path = match.group("key").split(".")
        value = _decode(match.group("value"))
        node = nested
        for depth, part in enumerate(path[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise PotstillUserError(
                    f"--param {'.'.join(path)!r} conflicts with --param "
                    f"{'.'.join(path[: depth + 1])!r}, which sets a value there."
                )
            node = child
        last = path[-1]
        if isinstance(node.get(last), dict):
            raise PotstillUserError(
                f"--param {'.'.join(path)!r} conflicts with other --param options that set "
                f"values inside {'.'.join(path)!r}."
            )
        node[last] = value
    return nested


def _decode(value: str) -> Any:
    stripped = value.strip()
    if stripped[:1] in ("[", "{"):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            return value
    return value


def mask_param(raw: str) -> str:
    """A `--param` option with its value hidden when the name, or the name of a field it
    sets inside (`STEP.llm.default_headers.Authorization`), looks secret."""
    key, sep, _ = raw.partition("=")
    if sep and any(is_secret_name(part) for part in key.split(".")[1:]):
        return f"{key}=**********"
    return raw
