"""Structured output: answers that parse, on every LLM.

A request asks for structured output through the LLM's `structured_output` field (every
request of the LLM) or per input, as distilabel's `StructuredGeneration` does: an input given
as a `(conversation, structured_output)` tuple. Either is a dict,
`{"format": "json", "schema": <pydantic model, JSON schema dict or JSON text>}` or
`{"format": "regex", "schema": "<pattern>"}`, turned here into a `StructuredOutput`.

What happens to such a request, once for every LLM (`requests` and `sync_batches` call in):

1. An LLM whose API constrains decoding natively for that format (its
   `native_structured_formats()`) gets the `StructuredOutput` as the `structured_output`
   argument of `agenerate`/`generate`, which its pure request builder turns into the API's
   parameter (OpenAI's `response_format`, Anthropic's forced tool, a llama.cpp grammar...).
   Any other LLM gets the conversation with an instruction appended to its last user
   message that says what to answer (the schema or the pattern).
2. Every answer is checked: JSON is parsed and validated with pydantic (the model given, or
   one built from the JSON schema: `json_schema_model`); a pattern must match the whole
   answer. A valid answer becomes the validated value as JSON (or the matched text).
3. An answer that fails is sent back with the validation error (an assistant turn with the
   answer, a user turn with the error), at most `structured_output_retries` times (or the
   spec's own `max_retries`). One that still fails is `None`, with the validation error as
   its error and the last answer kept as its raw output (both end up in
   `potstill_metadata`). Nothing raises: the other rows are unaffected.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Awaitable, Generator, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Callable, Literal, Optional, Union

from pydantic import BaseModel, ValidationError
from pydantic_core import core_schema
from typing_extensions import TypedDict

from potstill.llms.json_schema_model import schema_validator
from potstill.llms.typing import Generations
from potstill.typing import ChatType
from potstill.utils.canonical_json import canonical_json

if TYPE_CHECKING:
    from potstill.llms.base import LLM

FORMATS = ("json", "regex")
"""The formats a structured output may ask for."""

_KEYS = frozenset({"format", "schema", "max_retries", "whitespace_pattern", "mode"})
_MAX_ERRORS_SHOWN = 5
_FENCED = re.compile(r"^```[A-Za-z]*\s*\n?(.*?)\n?\s*```$", re.DOTALL)


class StructuredOutputType(TypedDict, total=False):
    """distilabel's structured output dict (the union of its outlines and instructor forms).

    Attributes:
        format: `"json"` (the default) or `"regex"`.
        schema: for `"json"`, a pydantic model class, a JSON schema dict or its JSON text;
            for `"regex"`, the pattern the whole answer must match.
        max_retries: repair attempts for this output (default: the LLM's
            `structured_output_retries`).
        whitespace_pattern: accepted for compatibility with outlines; not used.
        mode: accepted for compatibility with instructor; not used.
    """

    format: Literal["json", "regex"]
    schema: Union[str, type[BaseModel], dict[str, Any]]
    max_retries: int
    whitespace_pattern: Optional[Union[str, list[str]]]
    mode: Optional[str]


StructuredInput = tuple[ChatType, Optional[Union[StructuredOutputType, "StructuredOutput"]]]
"""An input with its own structured output: `(conversation, structured_output)`."""


def check_structured_output(value: Any) -> Optional[dict[str, Any]]:
    """Checks a `structured_output` value and fills in its default format.

    Args:
        value: `None`, a dict like `{"format": "json", "schema": ...}`, its JSON text (from a
            CLI `--param` or a YAML file) or a `StructuredOutput`.

    Returns:
        The dict (`format` set; a pydantic model kept as given), or `None`.

    Raises:
        ValueError: naming the key or value that is wrong and what to give instead.
    """
    if value is None:
        return None
    if isinstance(value, StructuredOutput):
        return value.as_dict()
    if isinstance(value, str):
        value = _json_value(
            value,
            'structured_output given as text must be JSON, e.g. \'{"format": "json", '
            '"schema": {...}}\'.',
        )
    if not isinstance(value, Mapping):
        raise ValueError(
            f"structured_output must be a dict like {{'format': 'json', 'schema': ...}}, got "
            f"{type(value).__name__}."
        )
    unknown = sorted(set(value) - _KEYS)
    if unknown:
        raise ValueError(
            f"structured_output has unknown key(s) {unknown}; it takes 'format', 'schema' and "
            "optionally 'max_retries'."
        )
    output_format = value.get("format") or "json"
    if output_format not in FORMATS:
        raise ValueError(
            f"structured_output format {output_format!r} is not supported: use 'json' (with a "
            "pydantic model or a JSON schema) or 'regex' (with a pattern)."
        )
    if value.get("schema") is None:
        raise ValueError(
            "structured_output needs a 'schema': a pydantic model or a JSON schema for "
            "'json', a pattern for 'regex'."
        )
    retries = value.get("max_retries")
    if retries is not None and (not isinstance(retries, int) or retries < 0):
        raise ValueError(f"structured_output max_retries must be an integer >= 0, got {retries!r}.")
    checked = {**value, "format": output_format}
    _spec(output_format, _schema_key(output_format, value["schema"]), retries)  # checks it
    return checked


class StructuredOutput:
    """One request's structured output, ready to send and to check answers against.

    Build it with `StructuredOutput.from_value`; equal values share one instance (the
    validator is built once).

    Attributes:
        format: `"json"` or `"regex"`.
        schema: the JSON schema (a dict) for `"json"`, the pattern for `"regex"`.
        model: the pydantic model the schema came from, if it came from one.
        name: a name for the schema (OpenAI's `json_schema.name`, Anthropic's tool name).
        retries: this output's repair attempts, or `None` for the LLM's default.
    """

    __slots__ = (
        "_adapter",
        "_pattern",
        "_strict",
        "_text",
        "format",
        "model",
        "name",
        "retries",
        "schema",
    )

    def __init__(
        self,
        format: str,
        schema: Union[str, dict[str, Any]],
        model: Optional[type[BaseModel]] = None,
        retries: Optional[int] = None,
    ) -> None:
        self.format = format
        self.schema = schema
        self.model = model
        self.retries = retries
        title = schema.get("title") if isinstance(schema, dict) else None
        self.name = _identifier(title if isinstance(title, str) else "") or (
            "output" if format == "json" else "pattern"
        )
        self._text = canonical_json({"format": format, "schema": schema})
        self._adapter: Any = None
        self._pattern: Optional[re.Pattern[str]] = None
        self._strict: Any = ...

    @classmethod
    def from_value(cls, value: Any) -> StructuredOutput:
        """The `StructuredOutput` of a `structured_output` value.

        Args:
            value: a dict like `{"format": "json", "schema": ...}` (see
                `check_structured_output`), its JSON text, or a `StructuredOutput`.

        Returns:
            The shared instance for that value.

        Raises:
            ValueError: for a value that is not a valid structured output.
        """
        if isinstance(value, StructuredOutput):
            return value
        checked = check_structured_output(value)
        if checked is None:
            raise ValueError("structured_output is None.")
        key = _schema_key(checked["format"], checked["schema"])
        return _spec(checked["format"], key, checked.get("max_retries"))

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        # A generation method's `structured_output` argument takes instances as they are.
        return core_schema.is_instance_schema(cls)

    def __repr__(self) -> str:
        # Also what request keys hash (see `potstill.utils.canonical_json`): the content.
        return f"StructuredOutput({self._text})"

    __str__ = __repr__

    def as_dict(self) -> dict[str, Any]:
        """The `{"format", "schema"}` dict (the pydantic model itself when there is one)."""
        value: dict[str, Any] = {"format": self.format, "schema": self.model or self.schema}
        if self.retries is not None:
            value["max_retries"] = self.retries
        return value

    # -- what requests carry -------------------------------------------------------------

    def strict_schema(self) -> Optional[dict[str, Any]]:
        """The schema in the form strict modes take (OpenAI's `strict: true`), or `None`
        when it has none: every object gets `additionalProperties: false`, which strict
        mode requires; a schema with an optional property or open extra properties cannot
        be strict.

        Returns:
            A strict copy of the schema, or `None`.
        """
        if self._strict is ...:
            strict = _strict(self.schema) if isinstance(self.schema, dict) else _NOT_STRICT
            self._strict = None if strict is _NOT_STRICT else strict
        return self._strict

    def closed_schema(self) -> dict[str, Any]:
        """The JSON schema with `additionalProperties: false` on every object that does not
        say otherwise: what a grammar built from it lets a model write is only what the
        schema names (a JSON schema allows any other property by default, and a small
        model constrained by it can go on adding properties until it runs out of tokens).

        Returns:
            A copy of the schema (format `"json"`).
        """
        return _closed(self.schema)

    def instruction(self) -> str:
        """What to answer, told in the prompt of an LLM that cannot constrain its output.

        Returns:
            The instruction.
        """
        if self.format == "regex":
            return (
                "Answer with only text that fully matches this regular expression, without "
                f"any other text: {self.schema}"
            )
        return (
            "Answer with only a JSON value that matches this JSON schema, without any other "
            f"text:\n{json.dumps(self.schema, ensure_ascii=False)}"
        )

    def repair_message(self, error: str) -> str:
        """The user turn that sends an invalid answer back.

        Args:
            error: why the answer is invalid.

        Returns:
            The message text.
        """
        return f"That answer is not valid: {error}\n{self.instruction()}"

    # -- checking answers ----------------------------------------------------------------

    def check(self, text: str) -> tuple[Optional[str], Optional[str]]:
        """Checks one answer.

        JSON may come wrapped in a Markdown code fence or surrounded by prose: the JSON
        value inside is what is validated.

        Args:
            text: the generated text.

        Returns:
            `(value, None)` for a valid answer, where `value` is the validated JSON (or the
            matched text); `(None, error)` otherwise.
        """
        if self.format == "regex":
            if self._pattern is None:
                self._pattern = re.compile(self.schema)  # type: ignore[arg-type]
            answer = text.strip()
            if self._pattern.fullmatch(answer):
                return answer, None
            return None, f"the answer does not fully match the regular expression {self.schema!r}"
        candidate = _json_text(text)
        try:
            if self.model is not None:
                value = self.model.model_validate_json(candidate)
                return value.model_dump_json(by_alias=True), None
            adapter = self._validator()
            value = adapter.validate_json(candidate)
            data = adapter.dump_python(value, mode="json", by_alias=True, exclude_unset=True)
            return json.dumps(data, ensure_ascii=False, separators=(",", ":")), None
        except ValidationError as error:
            return None, describe_validation_error(error)

    def _validator(self) -> Any:
        if self._adapter is None:
            self._adapter = schema_validator(self.schema)  # type: ignore[arg-type]
        return self._adapter


def describe_validation_error(error: ValidationError) -> str:
    """A short description of what is wrong with an answer.

    Args:
        error: pydantic's error.

    Returns:
        `"<location>: <message>"` for each of the first errors, joined.
    """
    items = error.errors(include_url=False)
    parts = []
    for item in items[:_MAX_ERRORS_SHOWN]:
        location = ".".join(str(part) for part in item["loc"])
        parts.append(f"{location}: {item['msg']}" if location else item["msg"])
    if len(items) > _MAX_ERRORS_SHOWN:
        parts.append(f"and {len(items) - _MAX_ERRORS_SHOWN} more")
    return "; ".join(parts)


# -- a batch's inputs -----------------------------------------------------------------------

# Set while potstill's batch path calls a synchronous LLM's `generate`: it passes each
# request's structured output itself (see `requested_output`).
_DECIDED: ContextVar[bool] = ContextVar("potstill_structured_output_decided", default=False)


@contextmanager
def passing_structured_output() -> Iterator[None]:
    """Marks the calls to `generate` made inside as passing their `structured_output`."""
    token = _DECIDED.set(True)
    try:
        yield
    finally:
        _DECIDED.reset(token)


def requested_output(llm: LLM, given: Optional[StructuredOutput]) -> Optional[StructuredOutput]:
    """What a local model's `generate` constrains its output to.

    Args:
        llm: the LLM.
        given: `generate`'s `structured_output` argument.

    Returns:
        `given`; or, for a direct call to `generate` (the batch path passes the argument
        itself), the LLM's `structured_output` field when the model constrains its format.
    """
    if given is not None or _DECIDED.get():
        return given
    spec = llm.structured_output_spec()
    return spec if spec is not None and spec.format in llm.native_structured_formats() else None


def split_inputs(
    llm: LLM, inputs: list[Any]
) -> tuple[list[ChatType], Optional[list[Optional[StructuredOutput]]]]:
    """The conversations of a batch and each one's structured output.

    Args:
        llm: the LLM (its `structured_output` applies to inputs without their own).
        inputs: conversations, or `(conversation, structured_output)` tuples.

    Returns:
        The conversations, and one `StructuredOutput` (or `None`) per input; the list is
        `None` when no input asks for structured output.
    """
    default = llm.structured_output_spec()
    if default is None and not any(type(single) is tuple for single in inputs):
        return inputs, None
    conversations: list[ChatType] = []
    specs: list[Optional[StructuredOutput]] = []
    for single in inputs:
        if type(single) is tuple:
            conversation, value = single
            specs.append(StructuredOutput.from_value(value) if value is not None else default)
        else:
            conversation = single
            specs.append(default)
        conversations.append(conversation)
    return conversations, specs


def prepare_request(
    llm: LLM, spec: StructuredOutput, conversation: ChatType, kwargs: dict[str, Any]
) -> tuple[ChatType, dict[str, Any]]:
    """What a request with structured output sends.

    Args:
        llm: the LLM.
        spec: the structured output.
        conversation: the input's conversation.
        kwargs: the generation kwargs.

    Returns:
        The conversation and the kwargs to send: the kwargs with `structured_output` for an
        LLM that constrains this format natively, else the conversation with the
        instruction appended to its last user message.
    """
    if spec.format in llm.native_structured_formats():
        return conversation, {**kwargs, "structured_output": spec}
    return with_instruction(conversation, spec.instruction()), kwargs


def with_instruction(conversation: ChatType, instruction: str) -> ChatType:
    """The conversation with `instruction` appended to its last user message (or added as
    a last user message when the conversation does not end with one).

    Args:
        conversation: the conversation (left unchanged).
        instruction: the text to add.

    Returns:
        A new conversation.
    """
    if conversation and conversation[-1].get("role") == "user":
        last = conversation[-1]
        content = last.get("content")
        if isinstance(content, str):
            joined = f"{content}\n\n{instruction}" if content else instruction
            return [*conversation[:-1], {**last, "content": joined}]  # type: ignore[list-item]
    return [*conversation, {"role": "user", "content": instruction}]


# -- checking and repairing a request's answers --------------------------------------------

Repairs = Generator[ChatType, Generations, Generations]
"""Yields each repair request's conversation, is sent its answer, returns the result."""


def repairs(
    llm: LLM, spec: StructuredOutput, conversation: ChatType, generations: Generations, row: int
) -> Repairs:
    """Checks a request's generations and repairs the invalid ones (see the module
    docstring); `repair` and `arepair` drive it.

    Args:
        llm: the LLM (for `structured_output_retries` and its logger).
        spec: the structured output.
        conversation: the conversation that was sent.
        generations: its answers.
        row: the input's row in the dataset, for the log.

    Yields:
        The conversation of each repair request; each is sent the request's generation.

    Returns:
        The generations: valid ones as validated JSON (or matched text), the others `None`
        with the validation error and the last answer kept.
    """
    retries = spec.retries if spec.retries is not None else (llm.structured_output_retries or 0)
    result = Generations.concat([generations])  # a copy
    for index, text in enumerate(generations):
        if text is None:
            continue
        value, error = spec.check(text)
        attempts = 0
        while error is not None and attempts < retries:
            attempts += 1
            reply = yield [
                *conversation,
                {"role": "assistant", "content": text},
                {"role": "user", "content": spec.repair_message(error)},
            ]
            _add_usage(result, index, reply)
            if not reply or reply[0] is None:
                error = f"{error} (repair request failed: {reply.errors[0] if reply else '?'})"
                break
            text = reply[0]
            value, error = spec.check(text)
        if error is None:
            result[index] = value
            continue
        message = (
            f"structured output invalid after {attempts} repair attempt"
            f"{'' if attempts == 1 else 's'}: {error}"
        )
        llm.logger.warning("Generation for row %d: %s", row, message)
        result[index] = None
        result.errors[index] = message
        result.raw_outputs[index] = text
    return result


def repair(steps: Repairs, send: Callable[[ChatType], Generations]) -> Generations:
    """Runs `repairs` with a synchronous `send` (one generation per conversation)."""
    try:
        conversation = next(steps)
        while True:
            conversation = steps.send(send(conversation))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def arepair(
    steps: Repairs, send: Callable[[ChatType], Awaitable[Generations]]
) -> Generations:
    """Runs `repairs` with an async `send` (one generation per conversation)."""
    try:
        conversation = next(steps)
        while True:
            conversation = steps.send(await send(conversation))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def _add_usage(result: Generations, index: int, reply: Generations) -> None:
    """Counts a repair request's tokens in the generation it repairs."""
    usage = reply.usage
    for tokens, added in (
        (result.input_tokens, usage.input_tokens),
        (result.output_tokens, usage.output_tokens),
    ):
        if added is not None:
            tokens[index] = (tokens[index] or 0) + added


# -- building specs -------------------------------------------------------------------------


def _schema_key(output_format: str, schema: Any) -> Any:
    """A hashable key for a schema: a pydantic model class, or the schema's canonical text."""
    if output_format == "regex":
        if not isinstance(schema, str):
            raise ValueError(
                f"structured_output with format 'regex' takes a pattern (a string) as its "
                f"schema, got {type(schema).__name__}."
            )
        try:
            re.compile(schema)
        except re.error as error:
            raise ValueError(
                f"structured_output schema {schema!r} is not a valid regular expression: {error}."
            ) from None
        return schema
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return schema
    if isinstance(schema, str):
        schema = _json_value(
            schema, "structured_output schema given as text must be a JSON schema in JSON."
        )
    if not isinstance(schema, dict):
        raise ValueError(
            "structured_output with format 'json' takes a pydantic model class or a JSON "
            f"schema (a dict) as its schema, got {type(schema).__name__}."
        )
    return canonical_json(schema)


def _json_value(text: str, message: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(message) from None


@functools.lru_cache(maxsize=512)
def _spec(output_format: str, key: Any, retries: Optional[int]) -> StructuredOutput:
    if output_format == "regex":
        return StructuredOutput("regex", key, retries=retries)
    if isinstance(key, type):
        return StructuredOutput("json", key.model_json_schema(), model=key, retries=retries)
    return StructuredOutput("json", json.loads(key), retries=retries)


def _json_text(text: str) -> str:
    """The JSON inside an answer: the answer itself, the content of a Markdown code fence,
    or the span from the first `{`/`[` to the last `}`/`]`."""
    stripped = text.strip()
    fenced = _FENCED.match(stripped)
    if fenced:
        stripped = fenced.group(1).strip()
    if stripped[:1] in ("{", "[", '"') or not stripped:
        return stripped
    starts = [position for position in (stripped.find("{"), stripped.find("[")) if position >= 0]
    if not starts:
        return stripped
    start = min(starts)
    end = stripped.rfind("}" if stripped[start] == "{" else "]")
    return stripped[start : end + 1] if end > start else stripped


_NOT_STRICT = object()  # what `_strict` gives for a schema that has no strict form


def _strict(node: Any) -> Any:
    """A strict copy of a schema node (see `StructuredOutput.strict_schema`), or
    `_NOT_STRICT`."""
    if isinstance(node, list):
        items = [_strict(item) for item in node]
        return _NOT_STRICT if any(item is _NOT_STRICT for item in items) else items
    if not isinstance(node, dict):
        return node
    strict = {key: _strict(value) for key, value in node.items()}
    if any(value is _NOT_STRICT for value in strict.values()):
        return _NOT_STRICT
    if node.get("type") == "object" or "properties" in node:
        properties = node.get("properties") or {}
        if node.get("additionalProperties", False) is not False:
            return _NOT_STRICT
        if set(properties) - set(node.get("required") or []):
            return _NOT_STRICT
        strict["additionalProperties"] = False
        strict["required"] = list(properties)
    return strict


def _closed(node: Any) -> Any:
    if isinstance(node, list):
        return [_closed(item) for item in node]
    if not isinstance(node, dict):
        return node
    closed = {key: _closed(value) for key, value in node.items()}
    if (node.get("type") == "object" or "properties" in node) and (
        "additionalProperties" not in node
    ):
        closed["additionalProperties"] = False
    return closed


def _identifier(title: str) -> str:
    """A name APIs accept for a schema or a tool: letters, digits, `_` and `-`, at most 64."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", title)[:64]
