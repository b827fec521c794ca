"""What the Evol tasks share: rewriting a text of each row several times with random mutations.

`EvolutionTask` evolves one text per row `num_evolutions` times: each round picks a mutation
template for the row (at random, reproducibly from `seed`, the row and the round), fills it
with the row's latest text and asks the LLM for the rewrite. `EvolInstruct`/`EvolComplexity`
evolve instructions, `EvolQuality` evolves responses.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Generator
from typing import Any, ClassVar, Dict, Optional

from pydantic import Field

from potstill.mixins.runtime_parameters import RuntimeParameter
from potstill.steps.tasks.rounds import Replies, Round, RoundsTask, RowTrace, row_random
from potstill.typing import ChatType, Row

_PLACEHOLDER = re.compile(r"<PROMPT>|<RESPONSE>")

# The label a model may repeat before its rewrite ("Rewritten prompt:", "#New Prompt#:",
# "**Improved answer:**"): the rewrite is what follows the last one.
_REWRITE_LABEL = re.compile(
    r"(?:rewritten|new|created|evolved|improved)\s+(?:prompt|instruction|answer|response)"
    r"\s*#?\s*\**\s*:\s*\**",
    re.IGNORECASE,
)
_WRAPPING = "\"'`* \n\t"


def fill_template(template: str, **values: str) -> str:
    """Replaces `<PROMPT>`/`<RESPONSE>` in one pass (a value holding a placeholder stays).

    Args:
        template: a mutation template.
        **values: `PROMPT=...` and/or `RESPONSE=...`.

    Returns:
        The filled template.
    """
    return _PLACEHOLDER.sub(lambda match: values.get(match.group()[1:-1], match.group()), template)


def parse_rewrite(output: str) -> str:
    """The rewritten text in an LLM's answer to a mutation prompt.

    A label the model repeats before its rewrite is dropped (with any preamble), as are
    quotes or bold markers around it.

    Args:
        output: the generated text.

    Returns:
        The rewrite.

    Raises:
        ValueError: when the answer holds no text.
    """
    labels = list(_REWRITE_LABEL.finditer(output))
    text = output[labels[-1].end() :] if labels else output
    text = text.strip(_WRAPPING)
    if not text:
        raise ValueError(f"the answer holds no rewritten text: {output[:80]!r}")
    return text


class EvolutionTask(RoundsTask):
    """Rewrites a text of every row `num_evolutions` times, one random mutation per round.

    A row whose request fails, or whose answer holds no text, stops evolving: its output
    columns are `None` and the reason is in `potstill_metadata`.

    Attributes:
        num_evolutions: how many times each text is rewritten.
        store_evolutions: keep every evolution (a list) or only the last one.
        mutation_templates: name -> mutation prompt (with `<PROMPT>`, and `<RESPONSE>` for
            responses).
        seed: seeds the choice of a mutation (per row and round, so it is reproducible).
    """

    evolved: ClassVar[str] = "text"
    """What is evolved (`instruction`, `response`): the output column is `evolved_<it>`."""

    num_evolutions: int = Field(ge=1)
    store_evolutions: bool = False
    mutation_templates: Dict[str, str]
    seed: RuntimeParameter[int] = Field(
        default=42,
        description="The seed of the random choice of a mutation for each row and round.",
    )

    @property
    def mutation_templates_names(self) -> list[str]:
        """The names of the mutation templates."""
        return list(self.mutation_templates)

    @abstractmethod
    def _start_text(self, row: Row) -> str:
        """The text of `row` to evolve (raises `ValueError` naming a bad column)."""

    @abstractmethod
    def _mutation_prompt(self, template: str, text: str, row: Row) -> str:
        """The mutation template filled for the row's current text."""

    def format_input(self, input: Any) -> ChatType:
        """A user message with a text, or with a row's text to evolve.

        Args:
            input: a string, or a row.

        Returns:
            The conversation.
        """
        text = input if isinstance(input, str) else self._start_text(input)
        return [{"role": "user", "content": text}]

    def format_output(self, output: Optional[str], input: Optional[Row] = None) -> Row:
        """Parses one rewrite (see `parse_rewrite`; raises `ValueError` on an empty one).

        Args:
            output: the generated text, or `None`.
            input: the row (unused).

        Returns:
            `{"evolved_<instruction|response>": rewrite}`.
        """
        return {f"evolved_{self.evolved}": None if output is None else parse_rewrite(output)}

    def _kept(self, chain: Optional[list[str]], include_original: bool) -> Optional[list[str]]:
        """The texts of an evolved row that go into the output: its last evolution, or with
        `store_evolutions` every evolution (after the original text with `include_original`);
        `None` for a row that failed."""
        if chain is None:
            return None
        if not self.store_evolutions:
            return chain[-1:]
        return chain if include_original else chain[1:]

    def _evolved_columns(self, kept: Optional[list[str]]) -> Row:
        """`evolved_<text>s` (the kept texts) with `store_evolutions`, else `evolved_<text>`
        (the last one); `None` for a row that failed."""
        if self.store_evolutions:
            return {f"evolved_{self.evolved}s": kept}
        return {f"evolved_{self.evolved}": kept[-1] if kept else None}

    def _evolve(
        self, inputs: list[Row], row_offset: int, traces: list[RowTrace]
    ) -> Generator[Round, Replies, list[Optional[list[str]]]]:
        """Evolves every row's text; returns each row's chain (start text first), or `None`
        for a row that failed."""
        chains: list[Optional[list[str]]] = []
        for row, trace in zip(inputs, traces):
            try:
                chains.append([self._start_text(row)])
            except ValueError as error:
                trace.fail(f"format_input failed: {error}")
                chains.append(None)
        names = self.mutation_templates_names
        for round_number in range(self.num_evolutions):
            requests: Round = []
            for index, (row, chain) in enumerate(zip(inputs, chains)):
                if chain is None:
                    requests.append(None)
                    continue
                name = row_random(self.seed, row_offset + index, round_number).choice(names)
                prompt = self._mutation_prompt(self.mutation_templates[name], chain[-1], row)
                requests.append(self.format_input(prompt))
            replies = yield requests
            for index, (request, reply) in enumerate(zip(requests, replies)):
                if request is None or reply is None:
                    continue
                chains[index] = self._extend(chains[index], traces[index], request, reply)
        return chains

    def _extend(
        self, chain: Optional[list[str]], trace: RowTrace, request: ChatType, reply: Any
    ) -> Optional[list[str]]:
        text = trace.record(request, reply)
        if chain is None or text is None:
            return None
        try:
            return [*chain, parse_rewrite(text)]
        except ValueError as error:
            trace.fail(f"format_output failed: {error}")
            self.logger.warning("Task %r: format_output failed: %s", self.name, error)
            return None
