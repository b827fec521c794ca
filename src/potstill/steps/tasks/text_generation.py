"""`TextGeneration` and `ChatGeneration`: the basic generation tasks."""

from __future__ import annotations

import warnings
from abc import ABC
from typing import Any, Optional

from potstill.errors import PotstillUserError
from potstill.steps.tasks.base import Task
from potstill.steps.typing import StepColumns
from potstill.typing import ChatType, Row


class _GenerationTask(Task, ABC):
    """What `TextGeneration` and `ChatGeneration` share: each answer is the `generation`."""

    @property
    def outputs(self) -> StepColumns:
        """`generation` and `model_name`."""
        return ["generation", "model_name"]

    def format_output(self, output: Optional[str], input: Optional[Row] = None) -> Row:
        """`{"generation": output}`."""
        return {"generation": output}


class TextGeneration(_GenerationTask):
    """Generates a text for each `instruction`.

    Input columns: `instruction` (a string) and optionally `system_prompt`.
    Output columns: `generation` and `model_name`.

    Attributes:
        system_prompt: a system prompt for every row; a `system_prompt` column in a row
            takes precedence.
        use_system_prompt: whether to send a system prompt at all.
    """

    system_prompt: Optional[str] = None
    use_system_prompt: bool = True

    @property
    def inputs(self) -> StepColumns:
        """`instruction` (required) and `system_prompt` (optional)."""
        return {"instruction": True, "system_prompt": False}

    def format_input(self, input: Row) -> ChatType:
        """Builds `[system?, user]` messages from the row.

        Args:
            input: a row with an `instruction` string.

        Returns:
            The conversation.
        """
        instruction = input.get("instruction")
        if _is_chat(instruction):
            warnings.warn(
                "Passing a conversation as `instruction` to TextGeneration is deprecated; "
                "use ChatGeneration with a `messages` column instead.",
                DeprecationWarning,
                stacklevel=2,
            )
            return list(instruction)  # type: ignore[arg-type]
        if not isinstance(instruction, str):
            raise PotstillUserError(
                f"TextGeneration {self.name!r}: column `instruction` must be a string, got "
                f"{type(instruction).__name__} ({instruction!r:.80}). Map another column with "
                "`input_mappings={'instruction': '<column>'}` if needed."
            )
        messages: ChatType = [{"role": "user", "content": instruction}]
        if self.use_system_prompt:
            system_prompt = input.get("system_prompt") or self.system_prompt
            if system_prompt:
                messages.insert(0, {"role": "system", "content": system_prompt})
        return messages


class ChatGeneration(_GenerationTask):
    """Continues each conversation in the `messages` column.

    Input columns: `messages` (OpenAI-format list of `{"role", "content"}`, ending with a
    user message). Output columns: `generation` and `model_name`.
    """

    @property
    def inputs(self) -> StepColumns:
        """`messages`."""
        return ["messages"]

    def format_input(self, input: Row) -> ChatType:
        """Validates and returns the conversation.

        Args:
            input: a row with a `messages` conversation.

        Returns:
            The conversation.
        """
        messages = input.get("messages")
        if not _is_chat(messages):
            raise PotstillUserError(
                f"ChatGeneration {self.name!r}: column `messages` must be a list of "
                f"{{'role': ..., 'content': ...}} dicts, got {messages!r:.80}."
            )
        if messages[-1]["role"] != "user":  # type: ignore[index]
            raise PotstillUserError(
                f"ChatGeneration {self.name!r}: the last message must be from the user, got "
                f"role {messages[-1]['role']!r}."  # type: ignore[index]
            )
        return list(messages)  # type: ignore[arg-type]


def _is_chat(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) > 0
        and all(isinstance(m, dict) and "role" in m and "content" in m for m in value)
    )
