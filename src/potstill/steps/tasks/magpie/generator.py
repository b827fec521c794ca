"""`MagpieGenerator`: Magpie instructions or conversations as the first step of a pipeline."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import Field

from potstill.mixins.runtime_parameters import RuntimeParameter
from potstill.steps.tasks.base import GeneratorTask
from potstill.steps.tasks.magpie.base import MagpieBase
from potstill.steps.tasks.rounds import run_script
from potstill.steps.typing import GeneratorStepOutput, StepColumns
from potstill.typing import Row


class MagpieGenerator(GeneratorTask, MagpieBase):
    """Generates `num_rows` instructions or conversations from nothing (Magpie).

    The same conversations as `Magpie` (same fields and columns), without input rows:
    `batch_size` rows at a time, each steered by `system_prompt` when given. Rows are
    numbered from 0, so the random pick of a system prompt is the same in every run and a
    resumed run continues where it stopped.

    Output columns: `instruction` (with `only_instruction`, or one turn), `response` (one
    turn), or `conversation` (several turns); `system_prompt_key` when `system_prompt` is a
    dict; `model_name`.

    Attributes:
        num_rows: how many rows to generate.

    References:
        - [Magpie: Alignment Data Synthesis from Scratch by Prompting Aligned LLMs with Nothing](https://arxiv.org/abs/2406.08464)
    """

    num_rows: RuntimeParameter[int] = Field(
        default=None, ge=1, description="The number of rows to generate."
    )

    def model_post_init(self, context: Any) -> None:
        # Checked before the step joins its pipeline, so a rejected one does not stay there.
        self._use_magpie_llm(self.llm)
        super().model_post_init(context)

    @property
    def outputs(self) -> StepColumns:
        """See the class docstring."""
        return self._magpie_outputs()

    def total_rows(self) -> Optional[int]:
        """`num_rows`."""
        return self.num_rows

    def format_output(self, output: Optional[str], input: Optional[Row] = None) -> Row:
        """A generated message, stripped (`None` when empty).

        Args:
            output: the generated text, or `None`.
            input: unused.

        Returns:
            `{"instruction": message}`.
        """
        return {"instruction": (output or "").strip() or None}

    def process(self, offset: int = 0) -> GeneratorStepOutput:
        """Generates the rows, `batch_size` at a time.

        Args:
            offset: how many rows earlier runs generated (they are skipped).

        Yields:
            Each batch of rows, and whether it is the last.
        """
        total = self.num_rows or 0
        start = offset
        while start < total:
            count = min(self.batch_size or total, total - start)
            script = self._conversations(self, [{} for _ in range(count)], start)
            rows = run_script(self.llm, script, start)
            start += count
            yield rows, start >= total
