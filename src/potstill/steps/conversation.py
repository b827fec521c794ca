"""`ConversationTemplate`: an instruction and its response as a two-message conversation."""

from __future__ import annotations

from potstill.steps.base import Step
from potstill.steps.row_checks import require_columns
from potstill.steps.typing import StepColumns, StepInput, StepOutput


class ConversationTemplate(Step):
    """Builds `conversation`: the `instruction` as the user message, the `response` as the
    assistant's.

    Input columns: `instruction`, `response`. Output columns: `conversation`.
    """

    @property
    def inputs(self) -> StepColumns:
        """`instruction` and `response`."""
        return ["instruction", "response"]

    @property
    def outputs(self) -> StepColumns:
        """`conversation`."""
        return ["conversation"]

    def process(self, inputs: StepInput) -> StepOutput:
        """Yields the rows with their `conversation`.

        Args:
            inputs: the batch.

        Yields:
            The rows, each with a `conversation` added.
        """
        require_columns(self.name, inputs, ["instruction", "response"])
        yield [
            {
                **row,
                "conversation": [
                    {"role": "user", "content": row["instruction"]},
                    {"role": "assistant", "content": row["response"]},
                ],
            }
            for row in inputs
        ]
