"""`ComplexityScorer`: Deita's instruction complexity score (Liu et al., 2023, "What Makes
Good Data for Alignment?", https://arxiv.org/abs/2312.15685).

The judge ranks a list of instructions by difficulty and complexity in one prompt, scoring
each from 1 to N (N instructions), or N + 1 for one too complex to answer, in the form
`[i] Score: x`.
"""

from __future__ import annotations

from typing import ClassVar

from potstill.steps.tasks._scoring import (
    DeitaScorer,
    numbered,
    required_texts,
)
from potstill.steps.typing import StepColumns
from potstill.typing import ChatType, Row

_PROMPT = (
    "Rank the following questions by their difficulty and complexity. Score each one from 1 "
    "to {count}; you may give a score of {above} to a question that is too complex for you "
    "to answer. Answer in this format:\n"
    "[1] Score: 1\n"
    "[2] Score: 2\n"
    "...\n"
    "{questions}"
)


class ComplexityScorer(DeitaScorer):
    """Scores the complexity of each of the row's `instructions`, the Deita way.

    Input columns: `instructions` (a list of strings).
    Output columns: `scores` (a list of floats from 1 to N + 1 for N instructions, aligned
    with `instructions`; `None` where the judge gave no valid score) and `model_name`.
    """

    scored_column: ClassVar[str] = "instructions"

    @property
    def inputs(self) -> StepColumns:
        """`instructions`."""
        return ["instructions"]

    def format_input(self, input: Row) -> ChatType:
        """Builds the ranking prompt for the row's instructions.

        Args:
            input: a row with `instructions`.

        Returns:
            The conversation.
        """
        instructions = required_texts(input.get("instructions"), "instructions", self)
        count = len(instructions)
        content = _PROMPT.format(count=count, above=count + 1, questions=numbered(instructions))
        return [{"role": "user", "content": content}]
