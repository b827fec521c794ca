"""A tiny random causal LM and tokenizer, written to disk on the spot (no hub access).

The model is a 2-layer Llama with random weights: its text is gibberish, but it exercises
the real tokenizer, chat template, padding and generation code paths of transformers and
vLLM. Sizes keep vLLM's CPU attention happy (head_dim 64).
"""

from __future__ import annotations

from pathlib import Path

WORDS = (
    "hello world what is the capital of spain madrid france paris tell me a story about "
    "dragon princess tower one two three four five six seven eight nine ten yes no"
).split()
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "<|im_start|>", "<|im_end|>"]
ROLES = ["system", "user", "assistant"]

# A chat template that is not ChatML, so tests can tell which one rendered a prompt.
TINY_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<s>' + message['role'] + ' ' + message['content'] + '</s>' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<s>assistant ' -}}{%- endif -%}"
)


def vocabulary() -> dict[str, int]:
    return {token: index for index, token in enumerate(SPECIALS + ROLES + WORDS)}


def build_tiny_model(
    directory: Path, *, chat_template: str | None = TINY_CHAT_TEMPLATE, arch: str = "llama"
) -> Path:
    """Writes a tokenizer and a random 2-layer model into `directory`.

    Args:
        directory: where to write (created if missing).
        chat_template: the tokenizer's chat template; `None` for a base-model tokenizer.
        arch: `"llama"` (rotary positions) or `"gpt2"` (learned absolute positions).

    Returns:
        The directory, loadable with `from_pretrained`.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
    )

    directory.mkdir(parents=True, exist_ok=True)
    vocab = vocabulary()
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.decoder = decoders.WordPiece()  # joins the words with spaces
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(directory)

    torch.manual_seed(0)
    special_ids = {
        "bos_token_id": vocab["<s>"],
        "eos_token_id": vocab["</s>"],
        "pad_token_id": vocab["<pad>"],
    }
    if arch == "gpt2":
        config = GPT2Config(
            vocab_size=len(vocab), n_embd=128, n_layer=2, n_head=2, n_positions=256, **special_ids
        )
        GPT2LMHeadModel(config).save_pretrained(directory)
        return directory
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=128,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=256,
        **special_ids,
    )
    LlamaForCausalLM(config).save_pretrained(directory)
    return directory
