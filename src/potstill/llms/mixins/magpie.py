"""Magpie pre-query templates: let an instruct model write the user's turn.

An instruct model continues whatever its prompt leaves open. Rendered with its chat template
up to (and including) the header of a *user* turn, a conversation makes the model write what
a user would say next: the Magpie method (Xu et al., 2024). The header is the model's
*pre-query template*, e.g. `<|im_start|>user\\n` for ChatML models (Qwen2, SmolLM2).

`MagpieChatTemplateMixin` gives an LLM the two fields that switch this on and the rule for
when it applies: only when the conversation does not end with a user message (then the model
answers as usual). Local backends render the prompt with their own chat template
(`magpie_prompt`); servers without one render ChatML or Llama 3 themselves
(`render_raw_prompt`).
"""

from __future__ import annotations

from typing import Any, Callable, Literal, Optional, Union

from pydantic import BaseModel, Field, field_validator, model_validator

from potstill.errors import PotstillUserError
from potstill.typing import ChatType

MagpieAvailablePreQueryTemplates = Literal["llama3", "qwen2"]
"""The pre-query templates known by name."""

MAGPIE_PRE_QUERY_TEMPLATES: dict[str, str] = {
    "llama3": "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n",
    "qwen2": "<|im_start|>user\n",
}
"""Name -> the text that opens a user turn in that model family's chat format."""

_BEGIN_OF_TEXT = "<|begin_of_text|>"

RenderPrompt = Callable[[ChatType, bool], str]
"""Renders `(conversation, add_generation_prompt)` with an LLM's chat template."""


class MagpieChatTemplateMixin(BaseModel):
    """Lets an LLM end its prompt with a user-turn header, so the model writes a user message.

    Attributes:
        use_magpie_template: append `magpie_pre_query_template` to every prompt whose
            conversation does not end with a user message (the `Magpie` tasks set it).
        magpie_pre_query_template: the text that opens a user turn for the model: `"llama3"`,
            `"qwen2"` (ChatML) or the literal text.
    """

    use_magpie_template: bool = Field(
        default=False,
        description="Whether to end prompts with the Magpie pre-query template, so that the "
        "model writes the user's next message.",
    )
    magpie_pre_query_template: Optional[Union[MagpieAvailablePreQueryTemplates, str]] = Field(
        default=None,
        description="The pre-query template: 'llama3', 'qwen2' or the text that opens a "
        "user turn in the model's chat format.",
    )

    @field_validator("magpie_pre_query_template")
    @classmethod
    def _resolve_template_name(cls, value: Optional[str]) -> Optional[str]:
        if value is None:
            return None
        if not value.strip():
            raise ValueError(
                "magpie_pre_query_template is empty: use 'llama3', 'qwen2' or the text that "
                "opens a user turn in the model's chat format (e.g. '<|im_start|>user\\n')."
            )
        return MAGPIE_PRE_QUERY_TEMPLATES.get(value, value)

    @model_validator(mode="after")
    def _template_when_used(self) -> Any:
        if self.use_magpie_template and self.magpie_pre_query_template is None:
            raise ValueError(
                f"{type(self).__name__} has use_magpie_template=True but no "
                "magpie_pre_query_template: set it to 'llama3', 'qwen2' or the text that "
                "opens a user turn in the model's chat format."
            )
        return self

    def uses_magpie_prompt(self, conversation: ChatType) -> bool:
        """Whether the prompt for `conversation` ends with the pre-query template.

        Args:
            conversation: the messages to continue.

        Returns:
            True when Magpie is on and the conversation does not end with a user message.
        """
        if not self.use_magpie_template:
            return False
        return not conversation or conversation[-1]["role"] != "user"

    def magpie_prompt(self, conversation: ChatType, render: RenderPrompt) -> str:
        """The prompt text for `conversation`, rendered with the LLM's chat template.

        Without Magpie (or when the conversation ends with a user message) it is the usual
        prompt, ready for the assistant's turn. With Magpie it is the conversation so far
        followed by the pre-query template (an empty conversation is the template alone).

        Args:
            conversation: the messages to continue.
            render: renders `(conversation, add_generation_prompt)` with the chat template.

        Returns:
            The prompt text.
        """
        if not self.uses_magpie_prompt(conversation):
            return render(conversation, True)
        rendered = render(conversation, False) if conversation else ""
        return _join(rendered, self.magpie_pre_query_template or "")

    def render_raw_prompt(self, conversation: ChatType) -> str:
        """The Magpie prompt for a server that takes raw text (no local chat template).

        The conversation is written in the chat format the pre-query template belongs to:
        ChatML (`<|im_start|>`) or Llama 3 (`<|start_header_id|>`).

        Args:
            conversation: the messages so far (not ending with a user message).

        Returns:
            The prompt text.

        Raises:
            PotstillUserError: when the template is in neither format.
        """
        template = self.magpie_pre_query_template or ""
        if "<|im_start|>" in template:
            return self.magpie_prompt(conversation, _render_chatml)
        if "<|start_header_id|>" in template:
            return self.magpie_prompt(conversation, _render_llama3)
        raise PotstillUserError(
            f"{type(self).__name__} writes Magpie prompts itself, in ChatML (`<|im_start|>`) "
            "or Llama 3 (`<|start_header_id|>`) format, and magpie_pre_query_template "
            f"{template!r} is in neither. Use 'qwen2' or 'llama3', or a local LLM "
            "(LlamaCppLLM, TransformersLLM, vLLM) that renders the model's own chat template."
        )


def _join(rendered: str, template: str) -> str:
    """Appends the template, without a second begin-of-text when the prompt has one."""
    if rendered and template.startswith(_BEGIN_OF_TEXT) and rendered.startswith(_BEGIN_OF_TEXT):
        template = template[len(_BEGIN_OF_TEXT) :]
    return rendered + template


def _render_chatml(conversation: ChatType, add_generation_prompt: bool) -> str:
    text = "".join(
        f"<|im_start|>{message['role']}\n{message['content']}<|im_end|>\n"
        for message in conversation
    )
    return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def _render_llama3(conversation: ChatType, add_generation_prompt: bool) -> str:
    text = _BEGIN_OF_TEXT + "".join(
        f"<|start_header_id|>{message['role']}<|end_header_id|>\n\n{message['content']}<|eot_id|>"
        for message in conversation
    )
    if add_generation_prompt:
        text += "<|start_header_id|>assistant<|end_header_id|>\n\n"
    return text
