"""A tiny random causal LM and tokenizer, written to disk on the spot (no hub access).

The model is a 2-layer Llama with random weights: its text is gibberish, but it exercises
the real tokenizer, chat template, padding and generation code paths of transformers and
vLLM. Sizes keep vLLM's CPU attention happy (head_dim 64).

`install_in_hub_cache` puts such a model into a Hugging Face cache under a Hub repo id, so
that code naming the repo (`from_pretrained("org/name")`) loads it offline, as it would
load the real model after a download.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

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
    directory: Path,
    *,
    chat_template: str | None = TINY_CHAT_TEMPLATE,
    arch: str = "llama",
    hidden_size: int = 128,
    num_attention_heads: int = 2,
    num_key_value_heads: int = 1,
) -> Path:
    """Writes a tokenizer and a random 2-layer model into `directory`.

    Args:
        directory: where to write (created if missing).
        chat_template: the tokenizer's chat template; `None` for a base-model tokenizer.
        arch: `"llama"` (rotary positions) or `"gpt2"` (learned absolute positions).
        hidden_size: the width of the Llama model (e.g. a real model's, so that hidden
            states have its shape).
        num_attention_heads: the Llama model's attention heads.
        num_key_value_heads: the Llama model's key/value heads.

    Returns:
        The directory, loadable with `from_pretrained`.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    directory.mkdir(parents=True, exist_ok=True)
    vocab = vocabulary()
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.decoder = decoders.WordPiece()  # joins the words with spaces
    _save_tokenizer(
        directory, backend, chat_template, additional_special_tokens=["<|im_start|>", "<|im_end|>"]
    )

    torch.manual_seed(0)
    special_ids = _special_ids(vocab)
    if arch == "gpt2":
        config = GPT2Config(
            vocab_size=len(vocab), n_embd=128, n_layer=2, n_head=2, n_positions=256, **special_ids
        )
        GPT2LMHeadModel(config).save_pretrained(directory)
        return directory
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads,
        max_position_embeddings=256,
        **special_ids,
    )
    LlamaForCausalLM(config).save_pretrained(directory)
    return directory


def _blob_name(path: Path) -> str:
    """The name the Hub cache gives a file's blob: its etag, which is the SHA-256 of an
    LFS file (the weights) and the git blob SHA-1 of a plain one."""
    data = path.read_bytes()
    if path.suffix in {".safetensors", ".bin"}:
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def install_in_hub_cache(
    model_dir: Path, hub_cache: Path, repo_id: str, *, revision: str = "main"
) -> Path:
    """Puts the files of `model_dir` into the Hugging Face cache `hub_cache` (what
    `HF_HUB_CACHE` names, `$HF_HOME/hub` by default) as the snapshot of `repo_id` at
    `revision`, in the layout `huggingface_hub` writes when it downloads a model:

        models--org--name/blobs/<etag>                  the files' contents
        models--org--name/snapshots/<commit>/<file>     links to the blobs
        models--org--name/refs/<revision>               the commit of the revision

    With `HF_HUB_OFFLINE=1` (or `local_files_only=True`), `hf_hub_download` resolves the
    revision through `refs/` and returns the snapshot's files, so `from_pretrained(repo_id)`
    loads them without contacting the Hub.

    Returns:
        The snapshot folder.
    """
    files = sorted(path for path in model_dir.rglob("*") if path.is_file())
    blobs = {path.relative_to(model_dir).as_posix(): _blob_name(path) for path in files}
    # A made-up commit hash (40 hex digits, as the Hub's), fixed by the files' contents.
    commit = hashlib.sha1(repr(sorted(blobs.items())).encode()).hexdigest()

    storage = hub_cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = storage / "snapshots" / commit
    (storage / "blobs").mkdir(parents=True, exist_ok=True)
    for path in files:
        name = path.relative_to(model_dir).as_posix()
        blob = storage / "blobs" / blobs[name]
        shutil.copyfile(path, blob)
        pointer = snapshot / name
        pointer.parent.mkdir(parents=True, exist_ok=True)
        try:  # relative links, as huggingface_hub makes them; copies where links fail
            pointer.symlink_to(os.path.relpath(blob, pointer.parent))
        except OSError:
            shutil.copyfile(blob, pointer)
    (storage / "refs").mkdir(exist_ok=True)
    (storage / "refs" / revision).write_text(commit)  # no newline, as the hub writes it
    return snapshot


def build_tiny_byte_model(directory: Path) -> Path:
    """Writes a random 2-layer Llama whose tokenizer has one token per byte (byte-level BPE
    without merges), so that any text, JSON included, can be spelled: what constrained
    decoding needs (the word-level tokenizer of `build_tiny_model` has no `{` or `"`).

    Args:
        directory: where to write (created if missing).

    Returns:
        The directory, loadable with `from_pretrained`.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM

    directory.mkdir(parents=True, exist_ok=True)
    vocab = {token: index for index, token in enumerate(SPECIALS[:4])}
    for symbol in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[symbol] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    _save_tokenizer(directory, backend, TINY_CHAT_TEMPLATE)
    torch.manual_seed(0)
    small = {"hidden_size": 64, "num_attention_heads": 1, "num_key_value_heads": 1}
    config = LlamaConfig(vocab_size=len(vocab), num_hidden_layers=2, **small, **_special_ids(vocab))
    LlamaForCausalLM(config).save_pretrained(directory)
    return directory


def _save_tokenizer(
    directory: Path, backend: Any, chat_template: str | None, **special: Any
) -> None:
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        **special,
    )
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(directory)


def _special_ids(vocab: dict[str, int]) -> dict[str, int]:
    return {
        "bos_token_id": vocab["<s>"],
        "eos_token_id": vocab["</s>"],
        "pad_token_id": vocab["<pad>"],
    }
