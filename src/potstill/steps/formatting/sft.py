"""Formats for supervised fine-tuning (SFT): a prompt, its id and the whole conversation."""

from __future__ import annotations

from potstill.steps.formatting.messages import (
    ConversationFormat,
    first_user_message,
    instruction_turns,
    prompt_id,
)
from potstill.steps.typing import StepColumns
from potstill.typing import ChatType, Row


class _SFTFormat(ConversationFormat):
    """Appends the `generation` to the conversation, as the assistant's message."""

    @property
    def outputs(self) -> StepColumns:
        """`prompt`, `prompt_id` and `messages`."""
        return ["prompt", "prompt_id", "messages"]

    def _format(self, index: int, row: Row) -> Row:
        prompt, turns = self._prompt_and_turns(index, row)
        answer = {"role": "assistant", "content": row["generation"]}
        return {
            **row,
            "prompt": prompt,
            "prompt_id": prompt_id(prompt),
            "messages": [*turns, answer],
        }


class FormatTextGenerationSFT(_SFTFormat):
    """Formats `TextGeneration` output for SFT, as `alignment-handbook` and `axolotl` read it.

    `messages` is the conversation: the `system_prompt` (when the row has a non-empty one),
    the `instruction` as the user message and the `generation` as the assistant's.

    Input columns: `instruction`, `generation`, optionally `system_prompt`.
    Output columns: `prompt` (the instruction), `prompt_id` (its SHA-256), `messages`.
    """

    @property
    def inputs(self) -> StepColumns:
        """`instruction` and `generation`; `system_prompt` when there is one."""
        return {"system_prompt": False, "instruction": True, "generation": True}

    def _prompt_and_turns(self, index: int, row: Row) -> tuple[str, ChatType]:
        return row["instruction"], instruction_turns(row)


class FormatChatGenerationSFT(_SFTFormat):
    """Formats `ChatGeneration` output for SFT: the `generation` is appended to `messages`.

    Input columns: `messages`, `generation`.
    Output columns: `prompt` (the first user message), `prompt_id` (its SHA-256), `messages`
    (the conversation with the generation as the last, assistant, message).
    """

    @property
    def inputs(self) -> StepColumns:
        """`messages` and `generation`."""
        return ["messages", "generation"]

    def _prompt_and_turns(self, index: int, row: Row) -> tuple[str, ChatType]:
        messages = row["messages"]
        return first_user_message(self.name, index, messages), list(messages)
