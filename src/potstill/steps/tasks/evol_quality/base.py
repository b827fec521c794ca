"""`EvolQuality`: evolves responses into better ones (Deita's Evol-Quality)."""

from __future__ import annotations

from typing import ClassVar, Dict

from pydantic import Field

from potstill.steps.tasks.evol_quality.utils import MUTATION_TEMPLATES
from potstill.steps.tasks.evolution import EvolutionTask, fill_template
from potstill.steps.tasks.rounds import RowTrace, Script, output_row
from potstill.steps.typing import StepColumns
from potstill.typing import Row


class EvolQuality(EvolutionTask):
    """Evolves each `response` to its `instruction` `num_evolutions` times (Evol-Quality).

    Each round rewrites the row's latest response with a mutation picked at random (the same
    one for the same `seed`, row and round in every run) that makes it more helpful, more
    relevant, deeper, more creative or more detailed. Deita then scores the evolved responses
    with `QualityScorer`. Rounds run as concurrent requests and are journaled under their row,
    like `EvolInstruct`.

    A row whose evolution fails (a failed request, or an answer with no text) gets `None` in
    its output column; the raw answers, prompts, tokens and the first error are in
    `potstill_metadata`.

    Input columns: `instruction`, `response`.
    Output columns: `evolved_response` (or `evolved_responses` with `store_evolutions`),
    `model_name`.

    Attributes:
        num_evolutions: how many times each response is evolved.
        store_evolutions: keep every evolution in `evolved_responses` (a list), or only the
            last one in `evolved_response`.
        include_original_response: with `store_evolutions`, start `evolved_responses` with
            the original response.
        mutation_templates: name -> mutation prompt, with `<PROMPT>` (the instruction) and
            `<RESPONSE>` (the response).
        seed: seeds the choice of a mutation for each row and round.

    References:
        - [What Makes Good Data for Alignment? A Comprehensive Study of Automatic Data Selection in Instruction Tuning](https://arxiv.org/abs/2312.15685)
    """

    evolved: ClassVar[str] = "response"

    include_original_response: bool = False
    mutation_templates: Dict[str, str] = Field(default_factory=MUTATION_TEMPLATES.copy)

    @property
    def inputs(self) -> StepColumns:
        """`instruction` and `response`."""
        return ["instruction", "response"]

    @property
    def outputs(self) -> StepColumns:
        """`evolved_response(s)` and `model_name`."""
        return ["evolved_responses" if self.store_evolutions else "evolved_response", "model_name"]

    def _start_text(self, row: Row) -> str:
        for column in ("instruction", "response"):
            value = row.get(column)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"column `{column}` must be a non-empty string, got {value!r:.80}")
        return row["response"]  # type: ignore[no-any-return]

    def _mutation_prompt(self, template: str, text: str, row: Row) -> str:
        return fill_template(template, PROMPT=row["instruction"], RESPONSE=text)

    def script(self, inputs: list[Row], row_offset: int) -> Script:
        """Evolves the batch's responses (see `RoundsTask.script`)."""
        traces = [RowTrace() for _ in inputs]
        chains = yield from self._evolve(inputs, row_offset, traces)
        return [
            output_row(
                self,
                row,
                self._evolved_columns(self._kept(chain, self.include_original_response)),
                trace,
            )
            for row, chain, trace in zip(inputs, chains, traces)
        ]
