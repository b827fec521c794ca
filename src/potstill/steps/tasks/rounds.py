"""Tasks that ask their LLM several times per row: evolutions, conversations.

Such a task is written once, as a *script*: a generator that yields a round of requests (one
optional conversation per row) and is sent back their generations, as often as it needs,
then returns the output rows. `run_script` plays it on a synchronous LLM
(`generate_outputs`), `arun_script` on an asynchronous one (`agenerate_outputs`, with many
batches in flight). Every request goes through the LLM's usual machinery, under the number of
the dataset row it belongs to, so the step's journal keeps each answer and a resumed run
re-sends none that were answered: a script must therefore ask the same questions when it
gets the same answers (random choices come from `row_random`).

`RowTrace` collects what one row's requests produced (prompts, raw answers, tokens, the first
error) into the `potstill_metadata` column, like a single-request task does.
"""

from __future__ import annotations

import asyncio
import random
from abc import ABC, abstractmethod
from collections.abc import Generator
from typing import Any, Optional

from potstill.llms.base import LLM
from potstill.llms.typing import Generations, TokenUsage
from potstill.llms.usage import tokens_cost
from potstill.steps.context import current_row_offset
from potstill.steps.tasks.base import Task, _merge, _Task
from potstill.steps.typing import StepInput, StepOutput
from potstill.typing import ChatType, Row

Round = list[Optional[ChatType]]
"""One request per row (`None`: nothing to ask for that row in this round)."""
Replies = list[Optional[Generations]]
"""The generations of a round, aligned with its requests (`None` where nothing was asked)."""
Script = Generator[Round, Replies, list[Row]]
"""Yields rounds, receives their replies, returns the output rows."""


def run_script(llm: LLM, script: Script, row_offset: int = 0) -> list[Row]:
    """Plays a script on the synchronous path (`generate_outputs`).

    Args:
        llm: the LLM that answers.
        script: the task's script.
        row_offset: the dataset index of the script's first row (the rows of a round are
            numbered from it).

    Returns:
        The rows the script returns.
    """
    kwargs = llm.get_generation_kwargs()
    try:
        requests = next(script)
        while True:
            runs = _runs(requests)
            outputs = [
                llm.generate_outputs(prompts, 1, row_offset=row_offset + start, **kwargs)
                for start, prompts in runs
            ]
            requests = script.send(_replies(requests, runs, outputs))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def arun_script(llm: LLM, script: Script, row_offset: int = 0) -> list[Row]:
    """Plays a script on the asynchronous path (`agenerate_outputs`, the requests of a
    round all at once); the arguments and the result are `run_script`'s."""
    kwargs = llm.get_generation_kwargs()
    try:
        requests = next(script)
        while True:
            runs = _runs(requests)
            outputs = await asyncio.gather(
                *(
                    llm.agenerate_outputs(prompts, 1, row_offset=row_offset + start, **kwargs)
                    for start, prompts in runs
                )
            )
            requests = script.send(_replies(requests, runs, outputs))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def _runs(requests: Round) -> list[tuple[int, list[ChatType]]]:
    """The requests as runs of consecutive rows, so each keeps its row number."""
    runs: list[tuple[int, list[ChatType]]] = []
    for index, request in enumerate(requests):
        if request is None:
            continue
        if runs and runs[-1][0] + len(runs[-1][1]) == index:
            runs[-1][1].append(request)
        else:
            runs.append((index, [request]))
    return runs


def _replies(
    requests: Round, runs: list[tuple[int, list[ChatType]]], outputs: list[list[Generations]]
) -> Replies:
    """The generations of each run's rows, put back at their rows' places in the round."""
    replies: Replies = [None] * len(requests)
    for (start, _), generations in zip(runs, outputs):
        replies[start : start + len(generations)] = generations
    return replies


def row_random(*parts: Any) -> random.Random:
    """A random generator determined by `parts` (e.g. seed, row, round): the same parts give
    the same choices in every run and process, so a resumed run asks the same questions."""
    return random.Random(":".join(str(part) for part in parts))


def user_message(text: str) -> ChatType:
    """A conversation of one user message."""
    return [{"role": "user", "content": text}]


class RowTrace:
    """What the requests of one row produced, for its `potstill_metadata`."""

    def __init__(self) -> None:
        self.prompts: list[ChatType] = []
        self.outputs: list[Optional[str]] = []
        self.input_tokens: Optional[int] = None
        self.output_tokens: Optional[int] = None
        self.usages: list[TokenUsage] = []  # per request, to price each one
        self.error: Optional[str] = None

    def record(self, prompt: ChatType, generations: Generations) -> Optional[str]:
        """Keeps one request's prompt, answer and usage.

        Args:
            prompt: the conversation sent.
            generations: what came back (one generation).

        Returns:
            The generated text, or `None` when the request failed (its error is kept).
        """
        text = generations[0] if generations else None
        self.prompts.append(prompt)
        self.outputs.append(text)
        usage = generations.usage
        self.usages.append(usage)
        self.input_tokens = _add(self.input_tokens, usage.input_tokens)
        self.output_tokens = _add(self.output_tokens, usage.output_tokens)
        if text is None:
            self.fail((generations.errors[0] if generations else None) or "no generation")
        return text

    def fail(self, message: str) -> None:
        """Records why the row failed (the first reason is kept)."""
        if self.error is None:
            self.error = message

    def metadata(self, task: _Task) -> Row:
        """The row's metadata entries, under the task's name."""
        metadata: Row = {}
        if task.add_raw_output:
            metadata[f"raw_output_{task.name}"] = self.outputs
        if task.add_raw_input:
            metadata[f"raw_input_{task.name}"] = self.prompts
        price = task.llm.token_price()
        costs = [tokens_cost(price, u.input_tokens, u.output_tokens) for u in self.usages]
        metadata[f"statistics_{task.name}"] = {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost": sum(costs) if costs and None not in costs else None,  # type: ignore[arg-type]
        }
        metadata[f"error_{task.name}"] = self.error
        return metadata


def _add(total: Optional[int], value: Optional[int]) -> Optional[int]:
    if value is None:
        return total
    return value if total is None else total + value


class RoundsTask(Task, ABC):
    """A task that asks its LLM several times per row, written as a `script`.

    `num_generations` does not apply: each row gets one output row.
    """

    @abstractmethod
    def script(self, inputs: list[Row], row_offset: int) -> Script:
        """The conversation with the LLM for a batch (see the module docstring).

        Args:
            inputs: the rows of the batch.
            row_offset: the dataset index of the first row.

        Returns:
            One output row per input row.
        """

    def process(self, inputs: StepInput) -> StepOutput:
        """Plays the script for a batch with the LLM's synchronous `generate_outputs`.

        Args:
            inputs: the rows.

        Yields:
            One output row per input row.
        """
        offset = current_row_offset()
        yield run_script(self.llm, self.script(inputs, offset), offset)

    async def aprocess(self, inputs: list[Row], row_offset: int = 0) -> list[Row]:
        """Plays the script for a batch with the LLM's `agenerate_outputs` (the engine's
        path for asynchronous LLMs, with several batches in flight).

        Args:
            inputs: the rows (input mappings already applied).
            row_offset: the dataset index of the first row.

        Returns:
            One output row per input row.
        """
        return await arun_script(self.llm, self.script(inputs, row_offset), row_offset)

    def supports_async_processing(self) -> bool:
        """Scripts run on both paths."""
        return True

    def expected_expansion(self) -> int:
        """One output row per input row."""
        return 1


def output_row(task: _Task, row: Row, columns: Row, trace: RowTrace) -> Row:
    """An input row with a task's output columns, `model_name` and the row's metadata."""
    return _merge(row, columns, task.llm.model_name, trace.metadata(task))


def answer_all(
    texts: list[Optional[list[str]]], traces: list[RowTrace]
) -> Generator[Round, Replies, list[Optional[list[Optional[str]]]]]:
    """Asks the LLM every text of every row as a user message (one round per position).

    Args:
        texts: per row, the texts to answer (`None`: the row failed, nothing to ask).
        traces: per row, where the requests are recorded.

    Returns:
        Per row, the answers aligned with its texts (`None` where a request failed), or
        `None` for a row with nothing to ask.
    """
    answers: list[Optional[list[Optional[str]]]] = [
        None if row_texts is None else [None] * len(row_texts) for row_texts in texts
    ]
    rounds = max((len(row_texts) for row_texts in texts if row_texts), default=0)
    for position in range(rounds):
        requests: Round = [
            user_message(row_texts[position])
            if row_texts is not None and position < len(row_texts)
            else None
            for row_texts in texts
        ]
        replies = yield requests
        for index, (request, reply) in enumerate(zip(requests, replies)):
            row_answers = answers[index]
            if request is not None and reply is not None and row_answers is not None:
                row_answers[position] = traces[index].record(request, reply)
    return answers
