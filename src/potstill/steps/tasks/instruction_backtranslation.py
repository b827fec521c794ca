"""`InstructionBacktranslation`: rates instruction-answer pairs (Humpback's self-curation)."""

from __future__ import annotations

import re
from typing import Optional

from potstill.steps.tasks.base import Task
from potstill.steps.tasks.inputs import string_columns
from potstill.steps.typing import StepColumns
from potstill.typing import ChatType, Row

# The 5-point scale of the paper's self-curation step, in our words.
_PROMPT = (
    "Below are an instruction from a user and a candidate answer. Rate how well the answer "
    "would serve as the reply of a helpful AI assistant, on a scale of 1 to 5:\n"
    "1: incomplete, vague, off-topic, controversial or not what was asked; for example "
    "missing content, numbered lists with nothing in them, or text copied from a blog post, "
    "web page or search results.\n"
    "2: covers most of what was asked, but does not answer it directly; for example it "
    "explains how to find the answer instead of giving it.\n"
    "3: helpful and covers the basics of the request, but not written as an AI assistant "
    "would; it reads like a blog post, a web page or a personal experience.\n"
    "4: written from an AI assistant's point of view, and answers the request clearly, "
    "completely and thoroughly, though it could be slightly more concise, focused or "
    "organized.\n"
    "5: a perfect answer from an AI assistant: focused on the request, expert, clear, "
    "well organized and engaging, with nothing irrelevant.\n\n"
    "Instruction:\n{instruction}\n\n"
    "Answer:\n{generation}\n\n"
    'Explain your rating briefly, then give it on the last line as "Score: <1-5>".'
)

# "Score: 4", "**Score:** 4/5", "a score of 4 out of 5"; not "Score: 4.5" nor "Score: 45".
_SCORE = re.compile(r"\bscore\b(?:\s+of)?\W{0,4}([1-5])(?![.,]?\d)", re.IGNORECASE)


def parse_rating(output: str) -> tuple[int, Optional[str]]:
    """The score (1-5) and the reason in a rating answer.

    The score is the last "Score: N" (any case; "N/5" and "a score of N" too); the reason is
    the text before it, when there is any.

    Args:
        output: the generated text.

    Returns:
        `(score, reason)`.

    Raises:
        ValueError: when there is no score from 1 to 5.
    """
    matches = list(_SCORE.finditer(output))
    if not matches:
        raise ValueError(f"no 'Score: <1-5>' in the answer: {output[-80:]!r}")
    last = matches[-1]
    reason = output[: last.start()].strip().rstrip("*#").strip()
    return int(last.group(1)), reason or None


class InstructionBacktranslation(Task):
    """Rates how well a `generation` answers an `instruction`, from 1 to 5 (Humpback).

    This is the self-curation step of instruction backtranslation: the LLM rates each
    instruction-answer pair on the paper's 5-point scale (from "not what was asked" to "a
    perfect AI assistant answer"), explains why, and ends with "Score: N". An answer without
    a score gives `None` in `score` and `reason`, its raw text kept in `potstill_metadata`.

    Input columns: `instruction`, `generation`.
    Output columns: `score` (an int from 1 to 5), `reason`, `model_name`.

    References:
        - [Self-Alignment with Instruction Backtranslation](https://arxiv.org/abs/2308.06259)
    """

    @property
    def inputs(self) -> StepColumns:
        """`instruction` and `generation`."""
        return ["instruction", "generation"]

    @property
    def outputs(self) -> StepColumns:
        """`score`, `reason` and `model_name`."""
        return ["score", "reason", "model_name"]

    def format_input(self, input: Row) -> ChatType:
        """The rating prompt for the row's pair.

        Args:
            input: a row with `instruction` and `generation` strings.

        Returns:
            The conversation.
        """
        values = string_columns(self, input, "instruction", "generation")
        return [{"role": "user", "content": _PROMPT.format(**values)}]

    def format_output(self, output: Optional[str], input: Optional[Row] = None) -> Row:
        """The score and its reason (see `parse_rating`; raises `ValueError` without one).

        Args:
            output: the generated text, or `None` when the generation failed.
            input: the row (unused).

        Returns:
            `{"score": int, "reason": str}`.
        """
        if output is None:
            return {"score": None, "reason": None}
        score, reason = parse_rating(output)
        return {"score": score, "reason": reason}
