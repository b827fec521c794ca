"""`SelfInstruct`: user queries generated from a seed text (Self-Instruct, Wang et al., 2023)."""

from __future__ import annotations

import re
from typing import Optional

from pydantic import Field

from potstill.steps.tasks.base import Task
from potstill.steps.tasks.inputs import string_columns
from potstill.steps.typing import StepColumns
from potstill.typing import ChatType, Row

DEFAULT_CRITERIA = (
    "Use a different verb in each query.\n"
    "Keep each query to one or two sentences that a text-only model can answer.\n"
    "Make each query understandable on its own, without the context.\n"
    'Mix questions (such as "Why does x happen?") with requests (such as "Describe how x '
    'works.").'
)
"""What the queries should be like, after the paper's guidance."""

_PROMPT = (
    "You are collecting queries that users could send to {application}.\n"
    "Read the context below and write {count} different queries about it.\n\n"
    "What the queries should be like:\n{criteria}\n\n"
    "Context:\n{context}\n\n"
    "Reply with the {count} queries only, one per line, each starting with its number "
    '("1.", "2.", ...).'
)

_NUMBERED = re.compile(r"^\s*\**\s*(?:query\s*)?\(?\d+\s*[.):]\**\s+(?P<text>.*)$", re.I)
_BULLETED = re.compile(r"^\s*[-*•]\s+(?P<text>.*)$")


def parse_queries(output: str) -> list[str]:
    """The queries in an answer: its numbered items, else its bullet items, else its lines
    (when there are several).

    A preamble or closing line around a numbered or bulleted list is dropped, as are quotes
    and bold markers around an item.

    Args:
        output: the generated text.

    Returns:
        The queries, in order.

    Raises:
        ValueError: when there is none.
    """
    lines = [line for line in output.splitlines() if line.strip()]
    for pattern in (_NUMBERED, _BULLETED):
        items = [match.group("text") for match in map(pattern.match, lines) if match]
        if items:
            break
    else:
        # Unlisted lines count only as several: one line alone is not the list asked for
        # (it is typically a refusal or a remark).
        items = lines if len(lines) > 1 else []
    queries = [item.strip().strip("\"'`*").strip() for item in items]
    queries = [query for query in queries if query]
    if not queries:
        raise ValueError(f"no queries in the answer: {output[:80]!r}")
    return queries


class SelfInstruct(Task):
    """Generates `num_instructions` user queries about each `input` text (Self-Instruct).

    The prompt asks for queries that users of `application_description` could send about
    the text, following `criteria_for_query_generation`, one per numbered line. The answer's
    numbered items become the `instructions` list (bullet items or plain lines when it has no
    numbers). An answer with no query gives `None`, its raw text kept in `potstill_metadata`.

    Input columns: `input` (the seed text).
    Output columns: `instructions` (a list of strings), `model_name`.

    Attributes:
        num_instructions: how many queries to ask for per input.
        criteria_for_query_generation: what the queries should be like.
        application_description: the AI application the queries are for.

    References:
        - [Self-Instruct: Aligning Language Models with Self-Generated Instructions](https://arxiv.org/abs/2212.10560)

    Examples:
        ```python
        from potstill.llms import OpenAILLM
        from potstill.steps.tasks import SelfInstruct

        task = SelfInstruct(llm=OpenAILLM(model="gpt-4o-mini"), num_instructions=3)
        task.load()
        rows = next(task.process([{"input": "The Moon's phases repeat every 29.5 days."}]))
        ```
    """

    num_instructions: int = Field(default=5, ge=1)
    criteria_for_query_generation: str = DEFAULT_CRITERIA
    application_description: str = "AI assistant"

    @property
    def inputs(self) -> StepColumns:
        """`input`."""
        return ["input"]

    @property
    def outputs(self) -> StepColumns:
        """`instructions` and `model_name`."""
        return ["instructions", "model_name"]

    def format_input(self, input: Row) -> ChatType:
        """The prompt that asks for queries about the row's `input`.

        Args:
            input: a row with an `input` string.

        Returns:
            The conversation.
        """
        context = string_columns(self, input, "input")["input"]
        prompt = _PROMPT.format(
            application=self.application_description,
            count=self.num_instructions,
            criteria=self.criteria_for_query_generation,
            context=context,
        )
        return [{"role": "user", "content": prompt}]

    def format_output(self, output: Optional[str], input: Optional[Row] = None) -> Row:
        """The queries of the answer (see `parse_queries`; raises `ValueError` for none).

        Args:
            output: the generated text, or `None` when the generation failed.
            input: the row (unused).

        Returns:
            `{"instructions": [...]}`.
        """
        return {"instructions": None if output is None else parse_queries(output)}
