"""Chat templates for local models whose tokenizer brings none.

Local LLMs (Transformers, vLLM) turn a conversation into a prompt with the tokenizer's chat
template. A `chat_template` given to the LLM replaces the tokenizer's; a tokenizer without
one (a base model) gets the ChatML template below. transformers 4.44 removed the implicit
`default_chat_template` that distilabel relied on (distilabel bug #887), so the fallback is
applied here explicitly.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from potstill.typing import ChatType

CHATML_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- endif -%}"
)
"""ChatML: `<|im_start|>{role}\\n{content}<|im_end|>\\n` per message, then the assistant turn."""


def resolve_chat_template(tokenizer: Any, chat_template: Optional[str]) -> str:
    """The chat template an LLM renders its prompts with.

    Args:
        tokenizer: a `transformers` tokenizer, or `None` when there is none.
        chat_template: the LLM's `chat_template` field; it wins over the tokenizer's own.

    Returns:
        The field's template, else the tokenizer's, else ChatML.
    """
    if chat_template is not None:
        return chat_template
    return getattr(tokenizer, "chat_template", None) or CHATML_TEMPLATE


def render_prompt(
    tokenizer: Any, conversation: ChatType, chat_template: str, add_generation_prompt: bool = True
) -> str:
    """Renders a conversation with a chat template, ready for the assistant's turn.

    The template is passed explicitly rather than set on the tokenizer, because some
    engines (vLLM) hand out tokenizer wrappers whose attributes do not reach the copies
    that do the work.

    Args:
        tokenizer: a `transformers` tokenizer (it renders the Jinja template).
        conversation: the messages.
        chat_template: the template, from `resolve_chat_template`.
        add_generation_prompt: end with the template's generation prompt (the opening of
            the assistant's turn); Magpie prompts end with a user turn instead.

    Returns:
        The prompt text.
    """
    prompt = tokenizer.apply_chat_template(
        [dict(message) for message in conversation],
        chat_template=chat_template,
        tokenize=False,
        add_generation_prompt=add_generation_prompt,
    )
    if not isinstance(prompt, str):  # some versions return a one-item list for one chat
        prompt = prompt[0]
    return prompt


def renderer(tokenizer: Any, chat_template: str) -> Callable[[ChatType, bool], str]:
    """`render_prompt` bound to a tokenizer and template: `(conversation,
    add_generation_prompt) -> prompt`, as `MagpieChatTemplateMixin.magpie_prompt` takes it."""

    def render(conversation: ChatType, add_generation_prompt: bool) -> str:
        return render_prompt(tokenizer, conversation, chat_template, add_generation_prompt)

    return render
