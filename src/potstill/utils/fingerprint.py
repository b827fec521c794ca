"""Fingerprints of code and callables that are the same in every process.

A stored batch is reused only when the code that made it is unchanged, and a request's key
must not depend on where in memory a callable argument happens to live. Both need a text for
a class or function that changes when (and only when) its code changes:

- the hash of its source (`inspect.getsource`), when the source can be found;
- otherwise (code typed at a prompt, made by `exec`), the hash of its bytecode, constants and
  names, with the functions it closes over fingerprinted the same way.
"""

from __future__ import annotations

import hashlib
import inspect
import re
import types
import weakref
from typing import Any

_PLAIN = (str, int, float, bool, type(None))
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_CLASS_CACHE: weakref.WeakKeyDictionary[type, str] = weakref.WeakKeyDictionary()


def code_fingerprint(obj: Any) -> str:
    """16 hex characters that change when the code of a class or function changes.

    Args:
        obj: a class, function or method.

    Returns:
        The fingerprint.
    """
    if isinstance(obj, type):
        cached = _CLASS_CACHE.get(obj)
        if cached is None:
            cached = _CLASS_CACHE[obj] = _digest(_class_text(obj))
        return cached
    return _digest(_function_text(obj))


def describe_callable(value: Any) -> str:
    """A callable as text without a memory address: its qualified name and code fingerprint.

    A callable object (an instance with `__call__`) also gets a digest of its attributes.

    Args:
        value: the callable.

    Returns:
        E.g. `"<callable my_module.clip_logits 3f2a...>"`.
    """
    if isinstance(value, types.MethodType):
        return f"<callable {_qualified_name(value.__func__)} {code_fingerprint(value.__func__)}>"
    if isinstance(value, (type, types.FunctionType)):
        return f"<callable {_qualified_name(value)} {code_fingerprint(value)}>"
    if isinstance(value, types.BuiltinFunctionType) or not hasattr(value, "__dict__"):
        return f"<callable {_qualified_name(value)}>"
    kind = type(value)
    state = _digest(_without_addresses(repr(stable_value(vars(value)))))
    return f"<callable {_qualified_name(kind)} {code_fingerprint(kind)} {state}>"


def stable_value(value: Any) -> Any:
    """`value` with every callable inside it (lists, tuples, dicts) replaced by its description.

    Args:
        value: JSON-like data that may hold callables.

    Returns:
        The same data (the very object when it holds no callable).
    """
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, (list, tuple)):
        items = [stable_value(item) for item in value]
        if all(new is old for new, old in zip(items, value)):
            return value
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        pairs = {key: stable_value(item) for key, item in value.items()}
        if all(pairs[key] is item for key, item in value.items()):
            return value
        return pairs
    if callable(value):
        return describe_callable(value)
    return value


def stable_text(value: Any) -> str:
    """A value that JSON cannot hold, as text without memory addresses (for dumps)."""
    if callable(value):
        return describe_callable(value)
    return _without_addresses(str(value))


def _qualified_name(value: Any) -> str:
    owner = getattr(value, "__objclass__", None)  # a method of a built-in type
    module = getattr(value, "__module__", None) or getattr(owner, "__module__", None) or "?"
    name = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
    return f"{module}.{name or type(value).__qualname__}"


def _class_text(cls: type) -> str:
    try:
        return inspect.getsource(cls)
    except (OSError, TypeError):  # no source file (a prompt, `exec`, a class built by `type`)
        pass
    parts = [_qualified_name(cls)]
    for name, member in sorted(vars(cls).items()):
        if isinstance(member, (staticmethod, classmethod)):
            member = member.__func__
        if isinstance(member, property):
            member = member.fget
        if isinstance(member, types.FunctionType):
            parts.append(f"{name}:{_function_text(member)}")
    return "\n".join(parts)


def _function_text(function: Any) -> str:
    """A function's code, its defaults and what it closes over (one level: a `@step`
    function lives in the closure of the step's generated `process`)."""
    function = inspect.unwrap(getattr(function, "__func__", function))
    if getattr(function, "__code__", None) is None:
        return _qualified_name(function)
    parts = [_own_text(function)]
    for cell in function.__closure__ or ():
        try:
            content = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if isinstance(content, types.FunctionType):
            parts.append(_own_text(inspect.unwrap(content)))
        elif isinstance(content, type):  # e.g. the `__class__` cell of `super()`
            parts.append(_qualified_name(content))
        else:
            parts.append(_without_addresses(repr(stable_value(content))))
    return "\n".join(parts)


def _own_text(function: types.FunctionType) -> str:
    try:
        text = inspect.getsource(function)
    except (OSError, TypeError):
        text = _code_text(function.__code__)
    return f"{text}\n{_without_addresses(repr(stable_value(function.__defaults__)))}"


def _code_text(code: types.CodeType) -> str:
    constants = [
        _code_text(constant) if isinstance(constant, types.CodeType) else repr(constant)
        for constant in code.co_consts
    ]
    return f"{code.co_code.hex()}|{constants}|{code.co_names}|{code.co_varnames}"


def _without_addresses(text: str) -> str:
    return _ADDRESS.sub("", text)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
