"""Formats for direct preference optimisation (DPO): the best and worst rated generations.

The chosen generation is the one with the highest rating, the rejected one the lowest; on a
tie the earliest generation wins both ways, so when every rating is equal `chosen` and
`rejected` hold the same generation (`chosen_rating == rejected_rating`: filter such rows out
before training). A `None` rating (a failed judgement) is ignored; a row without any rating
gets `None` in the chosen and rejected columns.
"""

from __future__ import annotations

from typing import Any, Optional

from potstill.errors import PotstillUserError
from potstill.steps.context import current_row_offset
from potstill.steps.formatting.messages import (
    ConversationFormat,
    first_user_message,
    instruction_turns,
    prompt_id,
)
from potstill.steps.row_checks import require_list
from potstill.steps.typing import StepColumns
from potstill.typing import ChatType, Row

_DPO_OUTPUTS = [
    "prompt",
    "prompt_id",
    "chosen",
    "chosen_model",
    "chosen_rating",
    "rejected",
    "rejected_model",
    "rejected_rating",
]


def best_and_worst(ratings: list[Any]) -> Optional[tuple[int, int]]:
    """The indexes of the first highest and the first lowest rating, `None`s ignored.

    Args:
        ratings: one rating per generation.

    Returns:
        `(chosen, rejected)`, or None when no rating is given.
    """
    rated = [(rating, index) for index, rating in enumerate(ratings) if rating is not None]
    if not rated:
        return None
    chosen = min(rated, key=lambda pair: (-pair[0], pair[1]))[1]
    rejected = min(rated)[1]
    return chosen, rejected


class _PreferenceFormat(ConversationFormat):
    """Picks chosen and rejected generations by rating; subclasses give the conversation."""

    @property
    def outputs(self) -> StepColumns:
        """`prompt`, `prompt_id`, `chosen`, `chosen_model`, `chosen_rating`, `rejected`,
        `rejected_model` and `rejected_rating` (the `_model` ones only when the rows have
        `generation_models`)."""
        return _DPO_OUTPUTS

    def _format(self, index: int, row: Row) -> Row:
        prompt, turns = self._prompt_and_turns(index, row)
        generations = require_list(self.name, index, "generations", row["generations"])
        ratings = require_list(self.name, index, "ratings", row["ratings"])
        models = row.get("generation_models")
        if len(ratings) != len(generations) or (
            models is not None and len(models) != len(generations)
        ):
            raise PotstillUserError(
                f"Step {self.name!r}: row {current_row_offset() + index} has "
                f"{len(generations)} generations but {len(ratings)} ratings"
                + (f" and {len(models)} generation_models" if models is not None else "")
                + "; give one of each per generation."
            )
        out = {**row, "prompt": prompt, "prompt_id": prompt_id(prompt)}
        picked = best_and_worst(ratings)
        for label, position in zip(("chosen", "rejected"), picked or (None, None)):
            if position is None:
                out[label], out[f"{label}_rating"] = None, None
            else:
                answer = {"role": "assistant", "content": generations[position]}
                out[label] = [*turns, answer]
                out[f"{label}_rating"] = ratings[position]
            if models is not None:
                out[f"{label}_model"] = None if position is None else models[position]
        if picked is None:
            self.logger.warning(
                "Row %d has no rating: its chosen and rejected columns are None.",
                current_row_offset() + index,
            )
        return out


class FormatTextGenerationDPO(_PreferenceFormat):
    """Formats `TextGeneration` outputs rated by a judge (e.g. `UltraFeedback`) for DPO.

    `chosen` and `rejected` are conversations: the `system_prompt` (when the row has a
    non-empty one), the `instruction`, then the chosen or rejected generation.

    Input columns: `instruction`, `generations`, `ratings` (one per generation), optionally
    `system_prompt` and `generation_models` (one model name per generation).
    Output columns: `prompt` (the instruction), `prompt_id` (its SHA-256), `chosen`,
    `chosen_rating`, `rejected`, `rejected_rating`, and with `generation_models`,
    `chosen_model` and `rejected_model`.
    """

    @property
    def inputs(self) -> StepColumns:
        """`instruction`, `generations`, `ratings`; `system_prompt`, `generation_models`
        when there are."""
        return {
            "system_prompt": False,
            "instruction": True,
            "generations": True,
            "generation_models": False,
            "ratings": True,
        }

    def _prompt_and_turns(self, index: int, row: Row) -> tuple[str, ChatType]:
        return row["instruction"], instruction_turns(row)


class FormatChatGenerationDPO(_PreferenceFormat):
    """Formats `ChatGeneration` outputs rated by a judge for DPO.

    `chosen` and `rejected` are the `messages` followed by the chosen or rejected generation.

    Input columns: `messages`, `generations`, `ratings` (one per generation), optionally
    `generation_models`.
    Output columns: `prompt` (the first user message), `prompt_id` (its SHA-256), `chosen`,
    `chosen_rating`, `rejected`, `rejected_rating`, and with `generation_models`,
    `chosen_model` and `rejected_model`.
    """

    @property
    def inputs(self) -> StepColumns:
        """`messages`, `generations`, `ratings`; `generation_models` when there are."""
        return {"messages": True, "generations": True, "generation_models": False, "ratings": True}

    def _prompt_and_turns(self, index: int, row: Row) -> tuple[str, ChatType]:
        messages = row["messages"]
        return first_user_message(self.name, index, messages), list(messages)
