"""`EvolInstructGenerator`: instructions evolved from scratch (WizardLM's Evol-Instruct)."""

from __future__ import annotations

import random
from typing import Dict, Optional

from pydantic import Field, PositiveInt, model_validator

from potstill.errors import PotstillUserError
from potstill.mixins.runtime_parameters import RuntimeParameter
from potstill.steps.tasks.base import GeneratorTask
from potstill.steps.tasks.evol_instruct.utils import GENERATION_MUTATION_TEMPLATES, SEED_WORDS
from potstill.steps.tasks.evolution import fill_template, parse_rewrite
from potstill.steps.tasks.rounds import RowTrace, output_row, user_message
from potstill.steps.typing import GeneratorStepOutput, StepColumns
from potstill.typing import ChatType, Row

_FRESH_START = "FRESH_START"
# Rounds in a row without a new instruction before the generator gives up.
_MAX_IDLE_ROUNDS = 50


class EvolInstructGenerator(GeneratorTask):
    """Generates `num_instructions` instructions by evolving them from scratch (Evol-Instruct).

    It keeps `num_instructions` instructions in the works. Each starts from `FRESH_START`: a
    request to write a question with a few random seed words. Each round, every instruction
    in the works is evolved with a random mutation (`FRESH_START` starts it over). An
    evolution whose length (in characters) is within `[min_length, max_length]` is emitted
    and its slot starts afresh; a shorter one keeps evolving, a longer one starts over. Every
    round's new instructions are yielded as one batch, with their answers when
    `generate_answers` is set. Random choices come from `seed`, and requests are journaled,
    so a resumed run continues where it stopped without re-sending answered requests.

    It stops with an error when the LLM fails every request of 3 rounds in a row, or when
    50 rounds in a row produce nothing within the length bounds (the bounds say how to fix
    it).

    Output columns: `instruction`, `model_name`, and `answer` with `generate_answers`.

    Attributes:
        num_instructions: how many instructions to generate.
        generate_answers: also answer each instruction.
        mutation_templates: name -> mutation prompt (with `<PROMPT>`); `FRESH_START` is
            required (its `<PROMPT>` gets the starting words).
        min_length: the fewest characters an instruction may have.
        max_length: the most characters an instruction may have.
        seed: seeds the random choices (seed words, mutations).

    References:
        - [WizardLM: Empowering Large Language Models to Follow Complex Instructions](https://arxiv.org/abs/2304.12244)
    """

    num_instructions: PositiveInt
    generate_answers: bool = False
    mutation_templates: Dict[str, str] = Field(
        default_factory=lambda: dict(GENERATION_MUTATION_TEMPLATES)
    )
    min_length: RuntimeParameter[int] = Field(
        default=512,
        description="The fewest characters a generated instruction may have to be kept.",
    )
    max_length: RuntimeParameter[int] = Field(
        default=1024,
        description="The most characters a generated instruction may have to be kept.",
    )
    seed: RuntimeParameter[int] = Field(
        default=42,
        description="The seed of the random choices of seed words and mutations.",
    )

    @model_validator(mode="after")
    def _has_fresh_start(self) -> EvolInstructGenerator:
        if _FRESH_START not in self.mutation_templates:
            raise PotstillUserError(
                f"{type(self).__name__}: mutation_templates needs a {_FRESH_START!r} template "
                "(how an instruction starts, with `<PROMPT>` for the starting words); it has "
                f"{sorted(self.mutation_templates)}."
            )
        return self

    @property
    def outputs(self) -> StepColumns:
        """`instruction`, `model_name` and, with `generate_answers`, `answer`."""
        return ["instruction", "model_name", *(["answer"] if self.generate_answers else [])]

    @property
    def mutation_templates_names(self) -> list[str]:
        """The names of the mutation templates."""
        return list(self.mutation_templates)

    def total_rows(self) -> Optional[int]:
        """`num_instructions`."""
        return self.num_instructions

    def format_output(self, output: Optional[str], input: Optional[Row] = None) -> Row:
        """Parses one evolution (raises `ValueError` when it holds no text).

        Args:
            output: the generated text, or `None`.
            input: unused.

        Returns:
            `{"instruction": text}`.
        """
        return {"instruction": None if output is None else parse_rewrite(output)}

    def process(self, offset: int = 0) -> GeneratorStepOutput:
        """Evolves instructions until `num_instructions` are emitted.

        Args:
            offset: how many instructions earlier runs emitted (they are skipped).

        Yields:
            Each round's new instructions, and whether they are the last.
        """
        if (self.min_length or 0) > (self.max_length or 0):
            raise PotstillUserError(
                f"{type(self).__name__} {self.name!r}: min_length={self.min_length} is more than "
                f"max_length={self.max_length}, so no instruction can fit; lower min_length or "
                "raise max_length."
            )
        rng = random.Random(self.seed)
        total = self.num_instructions
        slots: list[Optional[str]] = [None] * total  # None: start the slot afresh
        traces = [RowTrace() for _ in range(total)]
        produced = idle = failed = 0
        round_number = 0
        while produced < total:
            prompts = [user_message(self._prompt(slot, rng)) for slot in slots]
            replies = self.llm.generate_outputs(
                prompts, 1, row_offset=round_number * total, **self.llm.get_generation_kwargs()
            )
            accepted: list[tuple[str, RowTrace]] = []
            all_failed = True
            for index, (prompt, reply) in enumerate(zip(prompts, replies)):
                text = traces[index].record(prompt, reply)
                all_failed = all_failed and text is None
                instruction = self._evolution(text)
                if instruction is not None and self._fits(instruction):
                    accepted.append((instruction, traces[index]))
                    slots[index], traces[index] = None, RowTrace()
                elif instruction is not None and len(instruction) < (self.min_length or 0):
                    slots[index] = instruction  # too short: evolve it further
                else:
                    slots[index], traces[index] = None, RowTrace()
            failed = failed + 1 if all_failed else 0
            idle = 0 if accepted else idle + 1
            self._check_progress(failed, idle, replies[0].errors[0], produced)
            accepted = accepted[: total - produced]
            rows = self._rows(accepted, round_number)
            first = produced
            produced += len(accepted)
            round_number += 1
            rows = rows[max(0, offset - first) :]
            if rows:
                yield rows, produced >= total

    def _prompt(self, slot: Optional[str], rng: random.Random) -> str:
        name = _FRESH_START if slot is None else rng.choice(self.mutation_templates_names)
        if name == _FRESH_START:
            words = ", ".join(rng.choice(SEED_WORDS) for _ in range(rng.randint(1, 4)))
            return fill_template(self.mutation_templates[_FRESH_START], PROMPT=words)
        return fill_template(self.mutation_templates[name], PROMPT=slot or "")

    def _evolution(self, text: Optional[str]) -> Optional[str]:
        if text is None:
            return None
        try:
            return parse_rewrite(text)
        except ValueError:
            return None

    def _fits(self, instruction: str) -> bool:
        return (self.min_length or 0) <= len(instruction) <= (self.max_length or len(instruction))

    def _check_progress(self, failed: int, idle: int, error: Optional[str], produced: int) -> None:
        where = f"{type(self).__name__} {self.name!r}"
        if failed >= 3:
            raise RuntimeError(
                f"{where}: every request of the last 3 rounds failed (last error: {error}); "
                f"stopped after {produced} of {self.num_instructions} instructions. Run the "
                "pipeline again to continue once the LLM answers."
            )
        if idle >= _MAX_IDLE_ROUNDS:
            raise PotstillUserError(
                f"{where}: {_MAX_IDLE_ROUNDS} rounds produced no instruction between "
                f"min_length={self.min_length} and max_length={self.max_length} characters; "
                f"stopped after {produced} of {self.num_instructions}. Widen the bounds to "
                "fit what the model writes."
            )

    def _rows(self, accepted: list[tuple[str, RowTrace]], round_number: int) -> list[Row]:
        answers: list[Optional[str]] = []
        if self.generate_answers and accepted:
            prompts: list[ChatType] = [user_message(text) for text, _ in accepted]
            replies = self.llm.generate_outputs(
                prompts,
                1,
                row_offset=round_number * self.num_instructions,
                **self.llm.get_generation_kwargs(),
            )
            answers = [
                trace.record(prompt, reply)
                for (_, trace), prompt, reply in zip(accepted, prompts, replies)
            ]
        rows = []
        for position, (instruction, trace) in enumerate(accepted):
            columns: Row = {"instruction": instruction}
            if self.generate_answers:
                columns["answer"] = answers[position]
            rows.append(output_row(self, {}, columns, trace))
        return rows
