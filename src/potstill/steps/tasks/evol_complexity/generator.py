"""`EvolComplexityGenerator`: instructions evolved from scratch with in-depth mutations only."""

from __future__ import annotations

from typing import Dict

from pydantic import Field

from potstill.steps.tasks.evol_instruct.generator import EvolInstructGenerator
from potstill.steps.tasks.evol_instruct.utils import FRESH_START_TEMPLATE, IN_DEPTH_TEMPLATES


class EvolComplexityGenerator(EvolInstructGenerator):
    """Generates `num_instructions` increasingly complex instructions from scratch.

    The same as `EvolInstructGenerator` (same fields, columns and behaviour), with the
    in-depth mutations only (no `BREADTH`): each instruction starts from a few random seed
    words and is made more complex until its length is within `[min_length, max_length]`.

    Output columns: `instruction`, `model_name`, and `answer` with `generate_answers`.

    Attributes:
        mutation_templates: `FRESH_START` and the four in-depth mutations.

    References:
        - [What Makes Good Data for Alignment? A Comprehensive Study of Automatic Data Selection in Instruction Tuning](https://arxiv.org/abs/2312.15685)
        - [WizardLM: Empowering Large Language Models to Follow Complex Instructions](https://arxiv.org/abs/2304.12244)
    """

    mutation_templates: Dict[str, str] = Field(
        default_factory=lambda: {"FRESH_START": FRESH_START_TEMPLATE, **IN_DEPTH_TEMPLATES}
    )
