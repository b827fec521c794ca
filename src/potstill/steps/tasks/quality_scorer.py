"""`QualityScorer`: Deita's response quality score (Liu et al., 2023, "What Makes Good Data
for Alignment?", https://arxiv.org/abs/2312.15685).

The judge scores each response to one instruction in one prompt, from 1 to N (N responses),
or N + 1 for a response so well written that it cannot be improved, in the form
`[i] Score: x`.
"""

from __future__ import annotations

from typing import ClassVar

from potstill.steps.tasks._scoring import (
    DeitaScorer,
    numbered,
    required_text,
    required_texts,
)
from potstill.steps.typing import StepColumns
from potstill.typing import ChatType, Row

_PROMPT = (
    "Rank the following pairs of an instruction and a response by their quality. Weigh the "
    "helpfulness, relevance, accuracy, depth, creativity and level of detail of each "
    "response. Score each response from 1 to {count}; keep {above} for a response that is "
    "already very well written and cannot be improved. Answer in this format:\n"
    "[1] Score: 1\n"
    "[2] Score: 2\n"
    "...\n"
    "#Question#: {instruction}\n"
    "#Response List#:\n"
    "{responses}"
)


class QualityScorer(DeitaScorer):
    """Scores the quality of each of the row's `responses` to its `instruction`, the Deita
    way.

    Input columns: `instruction` (a string) and `responses` (a list of strings).
    Output columns: `scores` (a list of floats from 1 to N + 1 for N responses, aligned with
    `responses`; `None` where the judge gave no valid score) and `model_name`.
    """

    scored_column: ClassVar[str] = "responses"

    @property
    def inputs(self) -> StepColumns:
        """`instruction` and `responses`."""
        return ["instruction", "responses"]

    def format_input(self, input: Row) -> ChatType:
        """Builds the scoring prompt for the row's instruction and responses.

        Args:
            input: a row with `instruction` and `responses`.

        Returns:
            The conversation.
        """
        instruction = required_text(input.get("instruction"), "instruction", self)
        responses = required_texts(input.get("responses"), "responses", self)
        count = len(responses)
        content = _PROMPT.format(
            count=count, above=count + 1, instruction=instruction, responses=numbered(responses)
        )
        return [{"role": "user", "content": content}]
