"""`Magpie`: instructions and conversations written by an instruct model from nothing.

An instruct model whose prompt ends with the header of a user turn (its *pre-query template*)
writes what a user would ask: Magpie (Xu et al., 2024) collects those instructions, then has
the model answer them, turn after turn. The LLM must support pre-query templates (see
`potstill.llms.mixins.magpie`): `LlamaCppLLM`, `TransformersLLM`, `vLLM`, or `OpenAILLM` for a
server that takes raw prompts.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple, Union

from pydantic import BaseModel, Field, PositiveInt, ValidationError, field_validator

from potstill.errors import PotstillUserError
from potstill.llms.mixins.magpie import MagpieChatTemplateMixin
from potstill.mixins.runtime_parameters import RuntimeParameter
from potstill.steps.tasks.base import _Task
from potstill.steps.tasks.rounds import RoundsTask, RowTrace, Script, output_row, row_random
from potstill.steps.typing import StepColumns
from potstill.typing import ChatType, Row

MAGPIE_MULTI_TURN_SYSTEM_PROMPT = (
    "You are a helpful AI assistant. The user will talk with you over several rounds: a "
    "first question, then follow-up questions on the same subject. Give thorough, relevant "
    "and insightful answers that help the user."
)
"""The system prompt of multi-turn conversations when none is given (after the paper)."""

SystemPrompts = Union[str, List[str], Dict[str, str], Dict[str, Tuple[str, float]]]
"""One system prompt, a list to pick from, or name -> prompt (or `(prompt, probability)`)."""


class MagpieBase(BaseModel):
    """The fields and the conversation logic that `Magpie` and `MagpieGenerator` share.

    Attributes:
        n_turns: how many user turns each conversation has (each followed by the
            assistant's answer, except the last one with `end_with_user`).
        end_with_user: end each conversation with a user message (no last answer).
        include_system_prompt: keep the system prompt in `conversation`.
        only_instruction: generate the first user message only (`n_turns` is ignored).
        system_prompt: a system prompt that steers the topics; a list to pick one from at
            random per row; or a dict name -> prompt (or name -> `(prompt, probability)`) to
            pick from, whose name goes into `system_prompt_key`. A row's `system_prompt`
            column wins over it.
    """

    n_turns: RuntimeParameter[PositiveInt] = Field(
        default=1, description="The number of turns to generate for the conversation."
    )
    end_with_user: RuntimeParameter[bool] = Field(
        default=False, description="Whether the conversation should end with a user message."
    )
    include_system_prompt: RuntimeParameter[bool] = Field(
        default=False,
        description="Whether to include the system prompt used in the generated conversation.",
    )
    only_instruction: RuntimeParameter[bool] = Field(
        default=False,
        description="Whether to generate only the instruction. If this argument is `True`, "
        "then `n_turns` will be ignored.",
    )
    system_prompt: Optional[RuntimeParameter[SystemPrompts]] = Field(
        default=None,
        description="An optional system prompt, a list of system prompts to pick one from at "
        "random per row, or a dict of named system prompts (optionally with their "
        "probability of being picked) to steer the topics of the instructions.",
    )

    @field_validator("system_prompt")
    @classmethod
    def _check_system_prompts(cls, value: Optional[SystemPrompts]) -> Optional[SystemPrompts]:
        if isinstance(value, (list, dict)) and not value:
            raise ValueError("system_prompt is an empty list or dict: give at least one prompt")
        # (The type allows no dict mixing plain prompts with (prompt, probability) pairs.)
        if isinstance(value, dict) and all(isinstance(item, tuple) for item in value.values()):
            total = sum(weight for _, weight in value.values())  # type: ignore[misc]
            if abs(total - 1.0) > 1e-6:
                raise ValueError(
                    f"the probabilities of the system_prompt dict add up to {total}, not 1.0: "
                    "adjust them so that they sum to 1"
                )
        return value

    # -- shared by both tasks -----------------------------------------------------------

    def _use_magpie_llm(self, llm: Any) -> None:
        """Turns Magpie on for the LLM, or fails saying which LLMs can do it."""
        if not isinstance(llm, MagpieChatTemplateMixin):
            raise PotstillUserError(
                f"{type(self).__name__} needs an LLM that can end a prompt with a Magpie "
                "pre-query template (LlamaCppLLM, TransformersLLM, vLLM, or OpenAILLM for a "
                f"server that takes raw prompts); {type(llm).__name__} cannot."
            )
        try:
            llm.use_magpie_template = True
        except ValidationError:
            raise PotstillUserError(
                f"{type(self).__name__} needs the LLM's `magpie_pre_query_template`: set it on "
                f"{type(llm).__name__} to 'llama3', 'qwen2' or the text that opens a user turn "
                "in the model's chat format (e.g. '<|im_start|>user\\n')."
            ) from None

    def _magpie_outputs(self) -> list[str]:
        if self.only_instruction or (self.n_turns == 1 and self.end_with_user):
            columns = ["instruction"]
        elif self.n_turns == 1:
            columns = ["instruction", "response"]
        else:
            columns = ["conversation"]
        if isinstance(self.system_prompt, dict):
            columns.append("system_prompt_key")
        return [*columns, "model_name"]

    def _system_prompt(self, row: Row, row_index: int) -> tuple[Optional[str], Optional[str]]:
        """The row's system prompt and, when picked from a dict, its name."""
        if isinstance(row.get("system_prompt"), str):
            return row["system_prompt"], None
        prompts = self.system_prompt
        if isinstance(prompts, str):
            return prompts, None
        if isinstance(prompts, list):
            return row_random("magpie", row_index).choice(prompts), None
        if isinstance(prompts, dict):
            names = list(prompts)
            values = list(prompts.values())
            weights = [v[1] for v in values] if isinstance(values[0], tuple) else None
            name = row_random("magpie", row_index).choices(names, weights=weights)[0]
            chosen = prompts[name]
            return (chosen[0] if isinstance(chosen, tuple) else chosen), name
        if (self.n_turns or 1) > 1 and not self.only_instruction:
            return MAGPIE_MULTI_TURN_SYSTEM_PROMPT, None
        return None, None

    def _conversations(self, task: _Task, inputs: list[Row], row_offset: int) -> Script:
        """Writes each row's conversation, one round of requests per message."""
        traces = [RowTrace() for _ in inputs]
        picks = [self._system_prompt(row, row_offset + i) for i, row in enumerate(inputs)]
        conversations: list[Optional[ChatType]] = [
            [{"role": "system", "content": prompt}] if prompt is not None else []
            for prompt, _ in picks
        ]
        for turn in range(1 if self.only_instruction else (self.n_turns or 1)):
            last = turn == (self.n_turns or 1) - 1
            roles = ["user"] if self.only_instruction or (last and self.end_with_user) else []
            for role in roles or ["user", "assistant"]:
                requests = [None if c is None else list(c) for c in conversations]
                replies = yield requests
                for index, (request, reply) in enumerate(zip(requests, replies)):
                    if request is None or reply is None:
                        continue
                    text = traces[index].record(request, reply)
                    if text is not None and not text.strip():
                        traces[index].fail(f"the model wrote an empty {role} message")
                    if text is None or not text.strip():
                        conversations[index] = None
                    else:
                        request.append({"role": role, "content": text.strip()})
                        conversations[index] = request
        return [
            output_row(task, row, self._columns(conversation, key), trace)
            for row, conversation, (_, key), trace in zip(inputs, conversations, picks, traces)
        ]

    def _columns(self, conversation: Optional[ChatType], key: Optional[str]) -> Row:
        names = [name for name in self._magpie_outputs() if name != "model_name"]
        columns: Row = dict.fromkeys(names)
        if "system_prompt_key" in columns:
            columns["system_prompt_key"] = key
        if conversation is None:
            return columns
        messages = [m for m in conversation if m["role"] != "system"]
        if "conversation" in columns:
            columns["conversation"] = conversation if self.include_system_prompt else messages
        if "instruction" in columns:
            columns["instruction"] = messages[0]["content"]
        if "response" in columns:
            columns["response"] = messages[1]["content"]
        return columns


class Magpie(RoundsTask, MagpieBase):
    """Writes instructions, answers or whole conversations with an instruct model (Magpie).

    For each input row, the LLM writes a user message from a prompt that ends with its
    pre-query template (after the row's system prompt, if any), then answers it; this repeats
    for `n_turns`. The task turns `use_magpie_template` on for its LLM, which needs a
    `magpie_pre_query_template`. Each message is one round of concurrent requests, journaled
    under its row. A row whose request fails or whose message is empty gets `None` in its
    output columns, the messages so far and the error in `potstill_metadata`.

    Input columns: `system_prompt` (optional).
    Output columns: `instruction` (with `only_instruction`, or one turn), `response` (one
    turn), or `conversation` (several turns); `system_prompt_key` when `system_prompt` is a
    dict; `model_name`.

    Attributes:
        n_turns: how many user turns each conversation has.
        end_with_user: end each conversation with a user message.
        include_system_prompt: keep the system prompt in `conversation`.
        only_instruction: generate the first user message only.
        system_prompt: a system prompt, a list to pick from, or a dict of named ones
            (optionally with probabilities); a row's `system_prompt` column wins.

    References:
        - [Magpie: Alignment Data Synthesis from Scratch by Prompting Aligned LLMs with Nothing](https://arxiv.org/abs/2406.08464)
    """

    def model_post_init(self, context: Any) -> None:
        # Checked before the step joins its pipeline, so a rejected one does not stay there.
        self._use_magpie_llm(self.llm)
        super().model_post_init(context)

    @property
    def inputs(self) -> StepColumns:
        """`system_prompt` (optional)."""
        return {"system_prompt": False}

    @property
    def outputs(self) -> StepColumns:
        """See the class docstring."""
        return self._magpie_outputs()

    def format_input(self, input: Row) -> ChatType:
        """The conversation that opens the row: its system prompt, if any.

        Args:
            input: the row.

        Returns:
            The conversation the LLM continues with a user message.
        """
        prompt, _ = self._system_prompt(input, 0)
        return [] if prompt is None else [{"role": "system", "content": prompt}]

    def format_output(self, output: Optional[str], input: Optional[Row] = None) -> Row:
        """A generated message, stripped (`None` when empty).

        Args:
            output: the generated text, or `None`.
            input: the row (unused).

        Returns:
            `{"instruction": message}`.
        """
        return {"instruction": (output or "").strip() or None}

    def script(self, inputs: list[Row], row_offset: int) -> Script:
        """Writes the batch's conversations (see `RoundsTask.script`)."""
        return self._conversations(self, inputs, row_offset)
