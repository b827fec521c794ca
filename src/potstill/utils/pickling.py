"""Pickling components (LLMs, steps): the configuration travels, the runtime state does not.

A Ray worker receives its step pickled. What a component holds at run time (SDK clients,
models, locks, loggers, usage counters, a rate limiter's schedule) belongs to the process that
made it, so a pickled component keeps only its fields and the private attributes that are
plain data (text, numbers, lists and dicts of those); every other private attribute gets its
default back in the copy, which starts unloaded (`load()` recreates the rest).
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

_PLAIN = (str, int, float, bool, bytes, type(None))


def is_plain_data(value: Any) -> bool:
    """Whether `value` is text, a number, `None`, or lists/tuples/sets/dicts of those."""
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, (list, tuple, set, frozenset)):
        return all(is_plain_data(item) for item in value)
    if isinstance(value, dict):
        return all(is_plain_data(k) and is_plain_data(v) for k, v in value.items())
    return False


def portable_state(model: BaseModel, reset: tuple[str, ...] = ()) -> dict[str, Any]:
    """A pydantic model's pickled state without its runtime state.

    Args:
        model: the component.
        reset: private attributes that go back to their default even though they are plain
            data (e.g. `_loaded`).

    Returns:
        What `BaseModel.__getstate__` returns, with only the fields in `__dict__` (no cached
        properties) and only the plain private attributes not in `reset`.
    """
    state = dict(BaseModel.__getstate__(model))
    fields = type(model).model_fields
    state["__dict__"] = {k: v for k, v in state["__dict__"].items() if k in fields}
    private = state.get("__pydantic_private__") or {}
    state["__pydantic_private__"] = {
        name: value for name, value in private.items() if name not in reset and is_plain_data(value)
    }
    return state


def restore_state(model: BaseModel, state: dict[str, Any]) -> None:
    """Sets the state `portable_state` made, giving the private attributes it left out their
    defaults.

    Args:
        model: the new (empty) instance being unpickled.
        state: the pickled state.
    """
    BaseModel.__setstate__(model, state)
    private = dict(model.__pydantic_private__ or {})
    for name, attribute in type(model).__private_attributes__.items():
        if name not in private:
            factory = attribute.default_factory
            private[name] = factory() if factory is not None else copy.deepcopy(attribute.default)
    object.__setattr__(model, "__pydantic_private__", private)
