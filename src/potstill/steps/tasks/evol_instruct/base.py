"""`EvolInstruct`: evolves instructions into harder or rarer ones (WizardLM's Evol-Instruct)."""

from __future__ import annotations

from typing import ClassVar, Dict, Optional

from pydantic import Field

from potstill.steps.tasks.evol_instruct.utils import MUTATION_TEMPLATES
from potstill.steps.tasks.evolution import EvolutionTask, fill_template
from potstill.steps.tasks.rounds import RowTrace, Script, answer_all, output_row
from potstill.steps.typing import StepColumns
from potstill.typing import Row


class EvolInstruct(EvolutionTask):
    """Evolves each `instruction` `num_evolutions` times with an LLM (Evol-Instruct).

    Each round rewrites the row's latest instruction with a mutation picked at random (the
    same one for the same `seed`, row and round in every run): four *in-depth* mutations make
    it harder (add a constraint, deepen, concretize, ask for more reasoning steps), the
    *in-breadth* one writes a rarer instruction of the same domain. With `generate_answers`,
    the LLM then answers the evolved instruction(s). The evolutions of a batch run as rounds
    of concurrent requests (with an async LLM, several batches at once), and each request is
    journaled under its row, so a resumed run re-sends none that were answered.

    A row whose evolution fails (a failed request, or an answer with no text) gets `None` in
    its output columns; a failed answer is `None` on its own. The raw answers, prompts,
    tokens and the first error are in `potstill_metadata`.

    Input columns: `instruction`.
    Output columns: `evolved_instruction` (or `evolved_instructions` with
    `store_evolutions`), `model_name`, and with `generate_answers` `answer` (or `answers`).

    Attributes:
        num_evolutions: how many times each instruction is evolved.
        store_evolutions: keep every evolution in `evolved_instructions` (a list), or only
            the last one in `evolved_instruction`.
        generate_answers: also answer the evolved instruction(s).
        include_original_instruction: with `store_evolutions`, start `evolved_instructions`
            (and `answers`) with the original instruction.
        mutation_templates: name -> mutation prompt, with `<PROMPT>` where the instruction
            goes (default: the four in-depth mutations and `BREADTH`).
        seed: seeds the choice of a mutation for each row and round.

    References:
        - [WizardLM: Empowering Large Language Models to Follow Complex Instructions](https://arxiv.org/abs/2304.12244)

    Examples:
        ```python
        from potstill.llms import OpenAILLM
        from potstill.steps.tasks import EvolInstruct

        evol = EvolInstruct(llm=OpenAILLM(model="gpt-4o-mini"), num_evolutions=2)
        evol.load()
        rows = next(evol.process([{"instruction": "Explain photosynthesis."}]))
        ```
    """

    evolved: ClassVar[str] = "instruction"

    generate_answers: bool = False
    include_original_instruction: bool = False
    mutation_templates: Dict[str, str] = Field(default_factory=MUTATION_TEMPLATES.copy)

    @property
    def inputs(self) -> StepColumns:
        """`instruction`."""
        return ["instruction"]

    @property
    def outputs(self) -> StepColumns:
        """`evolved_instruction(s)`, `model_name` and, with `generate_answers`, `answer(s)`."""
        plural = "s" if self.store_evolutions else ""
        columns = [f"evolved_instruction{plural}", "model_name"]
        if self.generate_answers:
            columns.append(f"answer{plural}")
        return columns

    def _start_text(self, row: Row) -> str:
        instruction = row.get("instruction")
        if not isinstance(instruction, str) or not instruction.strip():
            raise ValueError(
                f"column `instruction` must be a non-empty string, got {instruction!r:.80}"
            )
        return instruction

    def _mutation_prompt(self, template: str, text: str, row: Row) -> str:
        return fill_template(template, PROMPT=text)

    def script(self, inputs: list[Row], row_offset: int) -> Script:
        """Evolves the batch's instructions, then answers them if asked to (see
        `RoundsTask.script`)."""
        traces = [RowTrace() for _ in inputs]
        chains = yield from self._evolve(inputs, row_offset, traces)
        kept = [self._kept(chain, self.include_original_instruction) for chain in chains]
        answers = (yield from answer_all(kept, traces)) if self.generate_answers else None
        return [
            output_row(
                self, row, self._columns(kept[i], answers[i] if answers else None), traces[i]
            )
            for i, row in enumerate(inputs)
        ]

    def _columns(self, kept: Optional[list[str]], answers: Optional[list[Optional[str]]]) -> Row:
        columns = self._evolved_columns(kept)
        if self.generate_answers and self.store_evolutions:
            columns["answers"] = answers
        elif self.generate_answers:
            columns["answer"] = answers[-1] if answers else None
        return columns
