"""The secret values this process knows, and the one place they are hidden from text.

A server may echo a request's credentials in an error (`Invalid credentials: Bearer sk-...`),
and errors end up in logs, in `potstill_metadata`, in the run store and in saved datasets.
So every secret an LLM is given (a `SecretStr` field set from the constructor, an env var, a
runtime parameter or the CLI, and the provider key env vars an SDK reads by itself) is
registered here, and `redact` replaces each known value with `**********`. It is applied to
every error description (`describe_error`), to every log record (a log record factory is
installed with the first secret) and to what the CLI prints.

Values shorter than 8 characters are not registered: hiding them would garble ordinary
text, and they are not real credentials.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import typing
from typing import Any, Optional

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_core import PydanticCustomError
from pydantic_core.core_schema import ErrorType

MASK = "**********"
_MIN_LENGTH = 8

# Parameter and env var names that hold secrets: API keys, tokens, passwords, and HTTP
# headers such as `default_headers`, which often carry credentials.
_SECRET_NAMES = frozenset(
    {"key", "apikey", "token", "secret", "password", "credentials", "headers"}
)
_SECRET_SUFFIXES = ("_key", "_token", "_secret", "_password", "_credentials", "_headers")
# Env vars whose values are credentials themselves (not paths to them, like
# `GOOGLE_APPLICATION_CREDENTIALS`, which error messages should keep showing).
_ENV_SECRET_SUFFIXES = ("_key", "_token", "_secret", "_password")

_KNOWN_ERROR_TYPES = frozenset(typing.get_args(ErrorType))

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: Optional[re.Pattern[str]] = None
_logging_redacted = False


def is_secret_name(name: str) -> bool:
    """Whether a parameter (or env var) name looks like it holds a secret (`api_key`,
    `HF_TOKEN`...)."""
    lowered = name.lower()
    return lowered in _SECRET_NAMES or lowered.endswith(_SECRET_SUFFIXES)


def register_secret(value: Any) -> None:
    """Remembers a secret value so that `redact` hides it from now on.

    Args:
        value: a `SecretStr` or a plain string; `None` and short values are ignored.
    """
    global _pattern
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if not isinstance(value, str) or len(value.strip()) < _MIN_LENGTH:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        _pattern = None
    _redact_logging()


def register_secrets_of(model: BaseModel) -> None:
    """Registers every `SecretStr` value held by a model's fields (also inside dicts and
    lists, e.g. `default_headers`)."""
    for name in type(model).model_fields:
        _register_nested(getattr(model, name, None))


def _register_nested(value: Any) -> None:
    if isinstance(value, SecretStr):
        register_secret(value)
    elif isinstance(value, dict):
        for item in value.values():
            _register_nested(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _register_nested(item)


def register_environment_secrets() -> None:
    """Registers the values of env vars named like credentials (`OPENAI_API_KEY`,
    `HF_TOKEN`...), which SDKs may read by themselves."""
    for name, value in os.environ.items():
        if name.lower().endswith(_ENV_SECRET_SUFFIXES):
            register_secret(value)


def redact(text: str) -> str:
    """`text` with every registered secret value replaced by `**********`."""
    if not _secrets or not text:
        return text
    return _compiled().sub(MASK, text)


def _compiled() -> re.Pattern[str]:
    global _pattern
    with _lock:
        if _pattern is None:
            # Longest first, so a secret that contains another is hidden whole.
            ordered = sorted(_secrets, key=len, reverse=True)
            _pattern = re.compile("|".join(re.escape(secret) for secret in ordered))
        return _pattern


# -- logging -------------------------------------------------------------------------------


def _redact_logging() -> None:
    """Installs (once) a log record factory that hides secrets in every record's message
    and traceback, whichever logger or handler it goes through."""
    global _logging_redacted
    with _lock:
        if _logging_redacted:
            return
        _logging_redacted = True
    previous = logging.getLogRecordFactory()

    def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        redact_record(record)
        return record

    logging.setLogRecordFactory(make_record)


def redact_record(record: logging.LogRecord) -> None:
    """Hides secrets in a log record's message and exception text, in place."""
    try:
        message = record.getMessage()
    except Exception:  # a malformed record: logging reports it when it is emitted
        return
    clean = redact(message)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        text = logging.Formatter().formatException(record.exc_info)
        clean = redact(text)
        if clean != text:
            record.exc_text = clean


# -- validation errors ---------------------------------------------------------------------


def hide_secret_inputs(error: ValidationError, secret_fields: set[str]) -> ValidationError:
    """A copy of a validation error whose inputs for secret fields are hidden.

    pydantic shows the rejected input (`input_value=['sk-...']`); for a secret field (or
    a model-level error, whose input holds every field) the input is replaced by a
    placeholder that keeps only its type.

    Args:
        error: the error pydantic raised.
        secret_fields: the names of the model's secret fields.

    Returns:
        The error itself when it shows no secret input, else the copy.
    """
    details = error.errors()
    if not any(_shows_secret(detail["loc"], secret_fields) for detail in details):
        return error
    lines: list[Any] = []
    for detail in details:
        value = detail["input"]
        if _shows_secret(detail["loc"], secret_fields):
            value = _hidden(value)
        if detail["type"] in _KNOWN_ERROR_TYPES:
            line: dict[str, Any] = {"type": detail["type"], "loc": detail["loc"], "input": value}
            if "ctx" in detail:
                line["ctx"] = detail["ctx"]
        else:
            line = {
                "type": PydanticCustomError(detail["type"], redact(detail["msg"])),
                "loc": detail["loc"],
                "input": value,
            }
        lines.append(line)
    return ValidationError.from_exception_data(error.title, lines)


def _shows_secret(loc: tuple[Any, ...], secret_fields: set[str]) -> bool:
    if not loc:
        return True
    return str(loc[0]) in secret_fields or is_secret_name(str(loc[0]))


def _hidden(value: Any) -> Any:
    """A stand-in for a secret input: its repr is `<hidden>`, its type name the input's."""
    stand_in = type(type(value).__name__, (), {"__repr__": lambda self: "<hidden>"})
    return stand_in()
