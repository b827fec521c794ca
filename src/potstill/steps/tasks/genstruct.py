"""`Genstruct`: an instruction and its answer written from a document (Genstruct 7B)."""

from __future__ import annotations

from typing import Optional

from potstill.steps.tasks.base import Task
from potstill.steps.tasks.inputs import string_columns
from potstill.steps.typing import StepColumns
from potstill.typing import ChatType, Row

# Genstruct 7B's input format, as its model card documents it: the document's title and
# content after `[[[Title]]]`/`[[[Content]]]`, then the interaction, opened at the user's
# turn. The model writes the user's message, `[[[Assistant]]]`, then the answer.
_PROMPT = (
    "[[[Title]]] {title}\n"
    "[[[Content]]] {content}\n\n"
    "The following is an interaction between a user and an AI assistant that is related to "
    "the above text.\n\n"
    "[[[User]]] "
)
_USER = "[[[User]]]"
_ASSISTANT = "[[[Assistant]]]"
_NEXT_PART = ("[[[User]]]", "[[[Title]]]", "[[[Content]]]")


def parse_interaction(output: str) -> tuple[str, str]:
    """The user's message and the assistant's answer in a Genstruct answer.

    Args:
        output: the generated text: the user's message, `[[[Assistant]]]`, the answer (and
            possibly the start of another interaction, which is dropped).

    Returns:
        `(user, assistant)`.

    Raises:
        ValueError: without `[[[Assistant]]]`, or when either side is empty.
    """
    user, marker, assistant = output.partition(_ASSISTANT)
    if not marker:
        raise ValueError(f"no {_ASSISTANT} in the answer: {output[:80]!r}")
    user = user.replace(_USER, "").strip()
    for part in _NEXT_PART:
        assistant = assistant.split(part, 1)[0]
    assistant = assistant.strip()
    if not user or not assistant:
        raise ValueError(f"an empty user message or answer in: {output[:80]!r}")
    return user, assistant


class Genstruct(Task):
    """Writes a user instruction and its answer grounded in a document (Genstruct).

    The prompt is the input format of NousResearch's Genstruct 7B, which was trained for it
    (other instruct models can follow it too): the document's `title` and `content`, then an
    interaction opened at the user's turn. The answer is split at `[[[Assistant]]]` into
    `user` and `assistant`; an answer without it gives `None` in both, its raw text kept in
    `potstill_metadata`.

    Input columns: `title`, `content`.
    Output columns: `user`, `assistant`, `model_name`.

    References:
        - [Genstruct 7B by Nous Research](https://huggingface.co/NousResearch/Genstruct-7B)
        - [Ada-Instruct: Adapting Instruction Generators for Complex Reasoning](https://arxiv.org/abs/2310.04484)
    """

    @property
    def inputs(self) -> StepColumns:
        """`title` and `content`."""
        return ["title", "content"]

    @property
    def outputs(self) -> StepColumns:
        """`user`, `assistant` and `model_name`."""
        return ["user", "assistant", "model_name"]

    def format_input(self, input: Row) -> ChatType:
        """The Genstruct prompt for the row's document.

        Args:
            input: a row with `title` and `content` strings.

        Returns:
            The conversation.
        """
        values = string_columns(self, input, "title", "content")
        return [
            {"role": "user", "content": _PROMPT.format(**{k: v.strip() for k, v in values.items()})}
        ]

    def format_output(self, output: Optional[str], input: Optional[Row] = None) -> Row:
        """The user's message and the answer (see `parse_interaction`; raises `ValueError`
        when they cannot be told apart).

        Args:
            output: the generated text, or `None` when the generation failed.
            input: the row (unused).

        Returns:
            `{"user": ..., "assistant": ...}`.
        """
        if output is None:
            return {"user": None, "assistant": None}
        user, assistant = parse_interaction(output)
        return {"user": user, "assistant": assistant}
