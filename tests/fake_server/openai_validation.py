"""Request validation for OpenAI chat completions, modelled on the real API's 400s."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ROLES = ("system", "user", "assistant", "developer", "tool")
RESPONSE_FORMAT_TYPES = ("text", "json_object", "json_schema")
MAX_N = 128
MAX_STOP = 4
MAX_TOP_LOGPROBS = 20
NUMBER_RANGES: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "frequency_penalty": (-2.0, 2.0),
    "presence_penalty": (-2.0, 2.0),
}


class InvalidRequest(Exception):
    """A request the real API would reject with 400.

    Attributes:
        message: Human-readable message.
        param: The offending parameter path, or None.
        code: OpenAI error code, or None.
    """

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        """Create the error.

        Args:
            message: Human-readable message.
            param: The offending parameter path, or None.
            code: OpenAI error code, or None.
        """
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


def _is_int(value: Any) -> bool:
    """Tell whether a JSON value is an integer (booleans excluded).

    Args:
        value: The value.

    Returns:
        True for ints that are not bools.
    """
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    """Tell whether a JSON value is a number (booleans excluded).

    Args:
        value: The value.

    Returns:
        True for ints and floats that are not bools.
    """
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _missing(param: str) -> InvalidRequest:
    """Build the error for a missing required parameter.

    Args:
        param: The parameter path.

    Returns:
        The error.
    """
    return InvalidRequest(
        f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
    )


def _invalid_type(param: str, expected: str) -> InvalidRequest:
    """Build the error for a parameter of the wrong type.

    Args:
        param: The parameter path.
        expected: What was expected, e.g. ``"an integer"``.

    Returns:
        The error.
    """
    return InvalidRequest(
        f"Invalid type for '{param}': expected {expected}.", param, "invalid_type"
    )


def validate_message(message: Any, index: int) -> None:
    """Validate one message.

    Args:
        message: The message.
        index: Its index, for the error's ``param``.

    Raises:
        InvalidRequest: If the message is malformed.
    """
    where = f"messages[{index}]"
    if not isinstance(message, Mapping):
        raise _invalid_type(where, "an object")
    role = message.get("role")
    if role is None:
        raise _missing(f"{where}.role")
    if role not in ROLES:
        supported = ", ".join(f"'{r}'" for r in ROLES)
        raise InvalidRequest(
            f"Invalid value: '{role}'. Supported values are: {supported}.",
            f"{where}.role",
            "invalid_value",
        )
    content = message.get("content")
    has_calls = bool(message.get("tool_calls") or message.get("function_call"))
    if content is None and not (role == "assistant" and has_calls):
        raise _missing(f"{where}.content")
    if content is not None and not isinstance(content, (str, list)):
        raise _invalid_type(f"{where}.content", "a string or an array of content parts")
    if isinstance(content, list):
        for part_index, part in enumerate(content):
            if not isinstance(part, Mapping) or "type" not in part:
                raise _missing(f"{where}.content[{part_index}].type")
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        raise _missing(f"{where}.tool_call_id")


def validate_messages(messages: Any) -> None:
    """Validate the ``messages`` array.

    Args:
        messages: The value of ``messages``.

    Raises:
        InvalidRequest: If it is missing, empty or holds a malformed message.
    """
    if messages is None:
        raise _missing("messages")
    if not isinstance(messages, list):
        raise _invalid_type("messages", "an array")
    if not messages:
        raise InvalidRequest("[] is too short - 'messages'", "messages", "empty_array")
    for index, message in enumerate(messages):
        validate_message(message, index)


def validate_sampling(body: Mapping[str, Any]) -> None:
    """Validate ``n``, token limits, numeric sampling parameters, ``seed`` and ``stop``.

    Args:
        body: The request body.

    Raises:
        InvalidRequest: On a bad value.
    """
    n = body.get("n")
    if n is not None and (not _is_int(n) or not 1 <= n <= MAX_N):
        raise InvalidRequest(f"Invalid 'n': must be an integer in [1, {MAX_N}].", "n")
    if body.get("max_tokens") is not None and body.get("max_completion_tokens") is not None:
        raise InvalidRequest(
            "Setting 'max_tokens' and 'max_completion_tokens' at the same time is not supported.",
            "max_tokens",
            "invalid_value",
        )
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None and (not _is_int(value) or value < 1):
            raise InvalidRequest(f"Invalid '{name}': must be an integer >= 1.", name)
    for name, (low, high) in NUMBER_RANGES.items():
        value = body.get(name)
        if value is not None and (not _is_number(value) or not low <= value <= high):
            raise InvalidRequest(f"Invalid '{name}': must be a number in [{low}, {high}].", name)
    if body.get("seed") is not None and not _is_int(body["seed"]):
        raise _invalid_type("seed", "an integer")
    stop = body.get("stop")
    if stop is None or isinstance(stop, str):
        return
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise _invalid_type("stop", "a string or an array of strings")
    if len(stop) > MAX_STOP:
        raise InvalidRequest(f"Invalid 'stop': at most {MAX_STOP} sequences.", "stop")


def validate_output_options(body: Mapping[str, Any]) -> None:
    """Validate ``response_format``, ``logprobs``, ``top_logprobs`` and ``stream``.

    Args:
        body: The request body.

    Raises:
        InvalidRequest: On a bad or unsupported value.
    """
    response_format = body.get("response_format")
    if response_format is not None:
        if not isinstance(response_format, Mapping):
            raise _invalid_type("response_format", "an object")
        if response_format.get("type") not in RESPONSE_FORMAT_TYPES:
            raise InvalidRequest(
                "Invalid 'response_format.type'.", "response_format.type", "invalid_value"
            )
        if response_format["type"] == "json_schema":
            schema = response_format.get("json_schema")
            if not isinstance(schema, Mapping) or not isinstance(schema.get("name"), str):
                raise _missing("response_format.json_schema.name")
            if schema.get("strict") and not _strict_schema(schema.get("schema")):
                raise InvalidRequest(
                    "Invalid schema for response_format: in strict mode every object needs "
                    "'additionalProperties': false and every property in 'required'.",
                    "response_format",
                    "invalid_value",
                )
    logprobs = body.get("logprobs")
    if logprobs is not None and not isinstance(logprobs, bool):
        raise _invalid_type("logprobs", "a boolean")
    top = body.get("top_logprobs")
    if top is not None:
        if not _is_int(top) or not 0 <= top <= MAX_TOP_LOGPROBS:
            raise InvalidRequest(
                f"Invalid 'top_logprobs': must be an integer in [0, {MAX_TOP_LOGPROBS}].",
                "top_logprobs",
            )
        if not logprobs:
            raise InvalidRequest(
                "'logprobs' must be set to true when 'top_logprobs' is used.", "logprobs"
            )
    if body.get("stream"):
        raise InvalidRequest("The fake server does not support 'stream': true.", "stream")


def _strict_schema(node: Any) -> bool:
    """Whether a schema keeps the rules of OpenAI's strict mode (objects closed, every
    property required), at every depth."""
    if isinstance(node, list):
        return all(_strict_schema(item) for item in node)
    if not isinstance(node, Mapping):
        return True
    if node.get("type") == "object" or isinstance(node.get("properties"), Mapping):
        properties = node.get("properties") or {}
        if node.get("additionalProperties") is not False:
            return False
        if set(properties) != set(node.get("required") or []):
            return False
        if not all(_strict_schema(value) for value in properties.values()):
            return False
    return all(
        _strict_schema(value)
        for key, value in node.items()
        if key in ("items", "anyOf", "oneOf", "allOf", "$defs", "definitions")
    ) and all(
        _strict_schema(value)
        for key in ("$defs", "definitions")
        for value in (node.get(key) or {}).values()
    )


def validate_chat_request(body: Any) -> Mapping[str, Any]:
    """Validate a chat completion request body.

    Args:
        body: The parsed JSON body.

    Returns:
        The body, typed as a mapping.

    Raises:
        InvalidRequest: If the real API would reject the request.
    """
    if not isinstance(body, Mapping):
        raise InvalidRequest("The request body must be a JSON object.")
    model = body.get("model")
    if model is None:
        raise InvalidRequest("you must provide a model parameter", "model")
    if not isinstance(model, str) or not model:
        raise _invalid_type("model", "a non-empty string")
    validate_messages(body.get("messages"))
    validate_sampling(body)
    validate_output_options(body)
    return body
