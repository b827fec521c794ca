"""What the fine-tuning formats share: the prompt id and the conversation's first turns."""

from __future__ import annotations

import hashlib
from typing import Any

from potstill.errors import PotstillUserError
from potstill.steps.context import current_row_offset
from potstill.typing import ChatType, Row


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
