"""What the fine-tuning formats share: the step that formats each row, the prompt id and the
conversation's first turns."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from typing import Any

from potstill.errors import PotstillUserError
from potstill.steps.base import Step
from potstill.steps.context import current_row_offset
from potstill.steps.row_checks import require_columns
from potstill.steps.typing import StepInput, StepOutput
from potstill.typing import ChatType, Row


class ConversationFormat(Step, ABC):
    """A step that formats each row on its own, from the row's prompt and the conversation
    turns that lead to the answers (the instruction, or the `messages`)."""

    def process(self, *inputs: StepInput) -> StepOutput:
        """Yields each input batch formatted.

        Args:
            *inputs: one batch per predecessor.

        Yields:
            The rows with the format's output columns.
        """
        spec = self.inputs
        required = [c for c, needed in spec.items() if needed] if isinstance(spec, dict) else spec
        for rows in inputs:
            require_columns(self.name, rows, required)
            yield [self._format(index, row) for index, row in enumerate(rows)]

    @abstractmethod
    def _prompt_and_turns(self, index: int, row: Row) -> tuple[str, ChatType]:
        """The row's prompt and the conversation turns before an answer."""

    @abstractmethod
    def _format(self, index: int, row: Row) -> Row:
        """The formatted row (`index`: its place in the batch, for error messages)."""


def prompt_id(prompt: str) -> str:
    """The SHA-256 of the prompt, in hex: the same prompt always gets the same id."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


def instruction_turns(row: Row) -> ChatType:
    """The `instruction` as a user message, after the `system_prompt` when the row has one."""
    turns: ChatType = []
    system_prompt = row.get("system_prompt")
    if isinstance(system_prompt, str) and system_prompt:
        turns.append({"role": "system", "content": system_prompt})
    turns.append({"role": "user", "content": row["instruction"]})
    return turns


def first_user_message(step_name: Any, index: int, messages: Any) -> str:
    """The content of the first user message of a conversation.

    Raises:
        PotstillUserError: when `messages` is not a conversation with a user message.
    """
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict) and message.get("role") == "user":
                return message.get("content")  # type: ignore[no-any-return]
    raise PotstillUserError(
        f"Step {step_name!r}: the `messages` of row {current_row_offset() + index} hold no user "
        f"message, so there is no prompt. Expected a list of {{'role', 'content'}} dicts with "
        f"at least one 'user' turn, got {str(messages)[:80]!r}."
    )
