"""Deterministic answers and whitespace-token accounting.

Messages are OpenAI-shaped dicts (``{"role": ..., "content": ...}``) whose content is
a string, a list of parts (``{"type": "text", "text": ...}``) or None. Provider
modules with another wire format convert to this shape before calling
:func:`answer_for`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .markers import parse_markers, strip_markers
from .schema_fill import fill_schema
from .scripted import scripted_answer

CANNED_ANSWERS: dict[str, str] = {
    "what's the capital of spain?": "The capital of Spain is Madrid.",
    "what is the capital of spain?": "The capital of Spain is Madrid.",
    "what's the capital of france?": "The capital of France is Paris.",
    "what is the capital of france?": "The capital of France is Paris.",
    "what is 2 + 2?": "2 + 2 equals 4.",
    "hello": "Hello! How can I help you today?",
    "say hello": "Hello!",
}


def content_text(content: Any) -> str:
    """Extract the text of a message content.

    Args:
        content: A string, a list of content parts, or None.

    Returns:
        The text; parts are joined with newlines and non-text parts are skipped.
    """
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        texts = [
            str(part.get("text", ""))
            for part in content
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        ]
        return "\n".join(texts)
    return str(content)


def last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """Return the raw text (markers included) of the last user message.

    Args:
        messages: The conversation.

    Returns:
        The text of the last ``user`` message, else of the last message, else ``""``.
    """
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return content_text(message.get("content"))
    if messages and isinstance(messages[-1], Mapping):
        return content_text(messages[-1].get("content"))
    return ""


def count_tokens(text: str | None) -> int:
    """Count whitespace-separated tokens.

    Args:
        text: Any text, or None.

    Returns:
        The number of tokens (0 for None).
    """
    return len(text.split()) if text else 0


def truncate_to_tokens(text: str, max_tokens: int) -> str:
    """Keep at most ``max_tokens`` whitespace tokens.

    Args:
        text: The text to truncate.
        max_tokens: The token budget.

    Returns:
        ``text`` unchanged when it fits, else its first ``max_tokens`` tokens joined by spaces.
    """
    tokens = text.split()
    if len(tokens) <= max_tokens:
        return text
    return " ".join(tokens[: max(max_tokens, 0)])


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` before the earliest occurrence of any stop string.

    Args:
        text: The text.
        stop: Stop strings; empty strings are ignored.

    Returns:
        The possibly shortened text and whether a stop string was found.
    """
    positions = [text.find(s) for s in stop if s]
    found = [p for p in positions if p >= 0]
    if not found:
        return text, False
    return text[: min(found)], True


INVALID_OUTPUT = {"unexpected": True}
"""What ``[[invalid_output]]`` makes the server answer: JSON that matches no useful schema."""
INVALID_OUTPUT_MARKER = "invalid_output"
# Words of the answer put in each string of a JSON answer (short, so that a token budget
# never cuts the JSON).
SCHEMA_TEXT_WORDS = 8


def wants_invalid_output(messages: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the conversation asks for an answer that fails structured-output checks.

    ``[[invalid_output]]`` in the last user message asks for it once (a repair request,
    whose last user message is the validation error, gets a valid answer);
    ``[[invalid_output=always]]`` in any user message asks for it on every request.

    Args:
        messages: The conversation (OpenAI-shaped).

    Returns:
        True when the answer must be :data:`INVALID_OUTPUT`.
    """
    if any(m.name == INVALID_OUTPUT_MARKER for m in parse_markers(last_user_text(messages))):
        return True
    return any(
        marker.name == INVALID_OUTPUT_MARKER and marker.value == "always"
        for message in messages
        if isinstance(message, Mapping) and message.get("role") == "user"
        for marker in parse_markers(content_text(message.get("content")))
    )


def schema_value(
    messages: Sequence[Mapping[str, Any]], schema: Mapping[str, Any], choice_index: int = 0
) -> Any:
    """The JSON value answering a conversation that asks for output matching ``schema``.

    Args:
        messages: The conversation (OpenAI-shaped).
        schema: The JSON schema the request carries.
        choice_index: Index of the sampled choice.

    Returns:
        :data:`INVALID_OUTPUT` when asked for (:func:`wants_invalid_output`), else a value
        filled to match ``schema`` whose strings are the first words of the answer.
    """
    if wants_invalid_output(messages):
        return dict(INVALID_OUTPUT)
    text = answer_for(messages, choice_index)
    return fill_schema(schema, " ".join(text.split()[:SCHEMA_TEXT_WORDS]))


def plain_answer(question: str) -> str:
    """Answer a question in plain text.

    Args:
        question: The user text with markers already stripped.

    Returns:
        A canned answer for known questions, else ``"Echo: <question>"``.
    """
    canned = CANNED_ANSWERS.get(question.strip().casefold())
    return canned if canned is not None else f"Echo: {question}"


def answer_for(
    messages: Sequence[Mapping[str, Any]],
    choice_index: int = 0,
    *,
    json_mode: bool = False,
    json_schema: Mapping[str, Any] | None = None,
) -> str:
    """Build the deterministic answer to a conversation.

    Args:
        messages: The conversation (OpenAI-shaped dicts).
        choice_index: Index of the sampled choice; above 0, ``" (sample i)"`` is appended
            so that several choices differ.
        json_mode: Answer with a JSON object string ``{"answer": ...}``.
        json_schema: A JSON schema; when given the answer is a JSON object filled
            to match it (implies ``json_mode``).

    Returns:
        The answer text: a scripted verdict for a judge task's prompt (see
        :mod:`tests.fake_server.judges`), a built-in task's prompt gets its scripted answer
        (see :mod:`tests.fake_server.scripted`), other prompts :func:`plain_answer`'s.
    """
    from .judges import judge_answer  # judges reads CANNED_ANSWERS from this module

    if json_schema is not None:
        return json.dumps(schema_value(messages, json_schema, choice_index))
    if wants_invalid_output(messages):
        return json.dumps(INVALID_OUTPUT)
    question = last_user_text(messages)
    answer = (
        judge_answer(question) or scripted_answer(question) or plain_answer(strip_markers(question))
    )
    if choice_index > 0:
        answer = f"{answer} (sample {choice_index})"
    if json_mode:
        return json.dumps({"answer": answer})
    return answer
