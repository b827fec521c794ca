"""OpenAI's chat completions format: reading its answers, as pure functions over JSON data.

OpenAI and the servers compatible with it (Azure OpenAI, Together, Anyscale, Groq, Mistral,
LiteLLM, Hugging Face's chat-completion route) answer in this shape; their providers turn the
answer into `Generations` here, once. Answers that an SDK returns as typed objects are given
as their JSON form (`model_dump()`, or the object itself where it is a dict).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Dict, Literal, Optional, Union

from potstill.llms.typing import Generations

if TYPE_CHECKING:
    from potstill.llms.structured import StructuredOutput

ResponseFormat = Union[Literal["text", "json", "json_object"], Dict[str, Any]]
"""`"text"`, `"json"`/`"json_object"` (JSON mode) or a full `response_format` dict."""


def wire_response_format(value: Optional[ResponseFormat]) -> Optional[Dict[str, Any]]:
    """The `response_format` field of a request.

    Args:
        value: `"text"`, `"json"`/`"json_object"`, a full dict, or `None`.

    Returns:
        `{"type": "text"}`, `{"type": "json_object"}`, the dict as given, or `None`.
    """
    if value is None or isinstance(value, dict):
        return value
    return {"type": "text"} if value == "text" else {"type": "json_object"}


def json_schema_response_format(
    structured_output: StructuredOutput, strict: bool = True
) -> Dict[str, Any]:
    """The `response_format` that asks for JSON matching a structured output's schema.

    Args:
        structured_output: the request's structured output (format `"json"`).
        strict: ask for strict schema adherence (`strict: true`) when the schema has a
            strict form (see `StructuredOutput.strict_schema`); otherwise it is sent as
            it is, with `strict: false`.

    Returns:
        `{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}`.
    """
    strict_schema = structured_output.strict_schema() if strict else None
    return {
        "type": "json_schema",
        "json_schema": {
            "name": structured_output.name,
            "schema": strict_schema if strict_schema is not None else structured_output.schema,
            "strict": strict_schema is not None,
        },
    }


def parse_chat_completion(
    completion: Mapping[str, Any], logprobs: bool = False, blank_is_empty: bool = False
) -> Generations:
    """The generations of a chat completion, one per choice in `index` order.

    A choice without text is `None`, with the refusal or the finish reason as its error.
    The request's token usage goes on the first generation.

    Args:
        completion: the decoded answer (`choices`, `usage`).
        logprobs: keep each choice's token logprobs (asked for with `logprobs=True`).
        blank_is_empty: count an empty text as no text (for servers that answer `""`
            when they have nothing to say).

    Returns:
        The generations.
    """
    choices = _sorted_choices(completion)
    messages = [choice.get("message") or {} for choice in choices]
    texts = [message_text(message) for message in messages]
    if blank_is_empty:
        texts = [text or None for text in texts]
    generations = Generations.from_request(
        texts,
        **_usage(completion),
        logprobs=[choice_logprobs(choice) for choice in choices] if logprobs else None,
    )
    for index, (choice, message, text) in enumerate(zip(choices, messages, texts)):
        if text is None:
            refusal = message.get("refusal")
            generations.errors[index] = (
                f"refused: {refusal}"
                if refusal
                else f"no content (finish_reason={choice.get('finish_reason')})"
            )
    return generations


def parse_text_completion(completion: Mapping[str, Any]) -> Generations:
    """The generations of a (legacy) text completion from `/completions`, one per choice.

    Args:
        completion: the decoded answer (`choices[].text`, `usage`).

    Returns:
        The generations.
    """
    choices = _sorted_choices(completion)
    return Generations.from_request(
        [choice.get("text") for choice in choices], **_usage(completion)
    )


def message_text(message: Mapping[str, Any]) -> Optional[str]:
    """The text of an assistant message: its `content` string, or the text of its content
    chunks joined (Mistral answers a list of chunks); `None` when there is none.

    Args:
        message: the choice's `message`.

    Returns:
        The text, or `None`.
    """
    content = message.get("content")
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [chunk.get("text") for chunk in content if isinstance(chunk, Mapping)]
        texts = [text for text in texts if isinstance(text, str)]
        return "".join(texts) if texts else None
    return None


def choice_logprobs(choice: Mapping[str, Any]) -> Optional[list[dict[str, Any]]]:
    """A choice's token logprobs as `[{"token", "logprob", "top_logprobs": [...]}]`.

    Args:
        choice: one of the answer's `choices`.

    Returns:
        One entry per generated token, or `None` when the choice has none.
    """
    content = (choice.get("logprobs") or {}).get("content")
    if not content:
        return None
    return [
        {
            "token": item.get("token"),
            "logprob": item.get("logprob"),
            "top_logprobs": [
                {"token": top.get("token"), "logprob": top.get("logprob")}
                for top in item.get("top_logprobs") or []
            ],
        }
        for item in content
    ]


def _sorted_choices(completion: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    choices = completion.get("choices") or []
    return sorted(choices, key=lambda choice: choice.get("index") or 0)


def _usage(completion: Mapping[str, Any]) -> dict[str, Optional[int]]:
    usage = completion.get("usage") or {}
    return {
        "input_tokens": usage.get("prompt_tokens"),
        "output_tokens": usage.get("completion_tokens"),
    }
