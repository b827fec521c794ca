"""Formats for supervised fine-tuning (SFT): a prompt, its id and the whole conversation."""

from __future__ import annotations

from potstill.steps.base import Step
from potstill.steps.formatting.messages import first_user_message, instruction_turns, prompt_id
from potstill.steps.row_checks import require_columns
from potstill.steps.typing import StepColumns, StepInput, StepOutput

_SFT_OUTPUTS = ["prompt", "prompt_id", "messages"]


class FormatTextGenerationSFT(Step):
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

    @property
    def outputs(self) -> StepColumns:
        """`prompt`, `prompt_id` and `messages`."""
        return _SFT_OUTPUTS

    def process(self, *inputs: StepInput) -> StepOutput:
        """Yields each input batch formatted.

        Args:
            *inputs: one batch per predecessor.

        Yields:
            The rows with `prompt`, `prompt_id` and `messages`.
        """
        for rows in inputs:
            require_columns(self.name, rows, ["instruction", "generation"])
            yield [
                {
                    **row,
                    "prompt": row["instruction"],
                    "prompt_id": prompt_id(row["instruction"]),
                    "messages": [
                        *instruction_turns(row),
                        {"role": "assistant", "content": row["generation"]},
                    ],
                }
                for row in rows
            ]


class FormatChatGenerationSFT(Step):
    """Formats `ChatGeneration` output for SFT: the `generation` is appended to `messages`.

    Input columns: `messages`, `generation`.
    Output columns: `prompt` (the first user message), `prompt_id` (its SHA-256), `messages`
    (the conversation with the generation as the last, assistant, message).
    """

    @property
    def inputs(self) -> StepColumns:
        """`messages` and `generation`."""
        return ["messages", "generation"]

    @property
    def outputs(self) -> StepColumns:
        """`prompt`, `prompt_id` and `messages`."""
        return _SFT_OUTPUTS

    def process(self, *inputs: StepInput) -> StepOutput:
        """Yields each input batch formatted.

        Args:
            *inputs: one batch per predecessor.

        Yields:
            The rows with `prompt`, `prompt_id` and the extended `messages`.
        """
        for rows in inputs:
            require_columns(self.name, rows, ["messages", "generation"])
            formatted = []
            for index, row in enumerate(rows):
                prompt = first_user_message(self.name, index, row["messages"])
                formatted.append(
                    {
                        **row,
                        "prompt": prompt,
                        "prompt_id": prompt_id(prompt),
                        "messages": [
                            *row["messages"],
                            {"role": "assistant", "content": row["generation"]},
                        ],
                    }
                )
            yield formatted
