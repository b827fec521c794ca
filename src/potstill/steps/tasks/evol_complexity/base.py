"""`EvolComplexity`: Evol-Instruct with the in-depth mutations only (Deita)."""

from __future__ import annotations

from typing import Dict

from pydantic import Field

from potstill.steps.tasks.evol_instruct.base import EvolInstruct
from potstill.steps.tasks.evol_instruct.utils import IN_DEPTH_TEMPLATES


class EvolComplexity(EvolInstruct):
    """Evolves each `instruction` into a more complex one (Evol-Complexity, from Deita).

    The same as `EvolInstruct` (same fields, columns and behaviour), with the four in-depth
    mutations only: add a constraint, deepen, concretize, ask for more reasoning steps. Deita
    evolves each instruction a few times and scores the evolutions with `ComplexityScorer`.

    Input columns: `instruction`.
    Output columns: `evolved_instruction` (or `evolved_instructions` with
    `store_evolutions`), `model_name`, and with `generate_answers` `answer` (or `answers`).

    Attributes:
        mutation_templates: the in-depth mutations (`CONSTRAINTS`, `DEEPENING`,
            `CONCRETIZING`, `INCREASED_REASONING_STEPS`).

    References:
        - [What Makes Good Data for Alignment? A Comprehensive Study of Automatic Data Selection in Instruction Tuning](https://arxiv.org/abs/2312.15685)
        - [WizardLM: Empowering Large Language Models to Follow Complex Instructions](https://arxiv.org/abs/2304.12244)
    """

    mutation_templates: Dict[str, str] = Field(default_factory=lambda: dict(IN_DEPTH_TEMPLATES))
