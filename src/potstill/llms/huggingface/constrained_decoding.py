"""Constrained decoding for `TransformersLLM`, with llguidance.

A structured output (see `potstill.llms.structured`) becomes an llguidance grammar (a JSON
schema, its objects closed to the properties it names, compiled without free whitespace;
or a regular expression), and a logits processor
keeps every sequence of a `model.generate` batch within it: before each token, the tokens
the grammar does not allow next get a logit of `-inf`; once the grammar is complete, only
the end-of-sequence token is allowed.

Why llguidance (of outlines, xgrammar and llguidance, which all do this): it is one small
wheel with no dependencies (outlines brings a dozen packages, xgrammar brings triton),
computes a token mask in microseconds without precomputing per-schema tables, reads
Hugging Face fast tokenizers directly, and is maintained by Microsoft as the engine of
`guidance` and one of vLLM's structured-output backends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from potstill.utils.imports import require

if TYPE_CHECKING:
    from potstill.llms.structured import StructuredOutput

# JSON without free whitespace: a small model cannot stall in an endless run of spaces.
_JSON_OPTIONS = {"whitespace_flexible": False, "lenient": True}


def grammar_for(structured_output: StructuredOutput) -> str:
    """The llguidance grammar of a structured output.

    Args:
        structured_output: a JSON schema or a regular expression.

    Returns:
        The grammar, as llguidance takes it.
    """
    llguidance = require("llguidance", "transformers")
    matcher = llguidance.LLMatcher
    if structured_output.format == "regex":
        return matcher.grammar_from_regex(structured_output.schema)
    return matcher.grammar_from_json_schema(
        structured_output.closed_schema(), defaults=_JSON_OPTIONS
    )


def llguidance_tokenizer(tokenizer: Any, vocab_size: int, eos_ids: set[int]) -> Any:
    """The llguidance view of a Hugging Face fast tokenizer (slow to build: build it once).

    Args:
        tokenizer: the model's tokenizer (a fast one).
        vocab_size: the width of the model's logits.
        eos_ids: the tokens that end a sequence.

    Returns:
        An `llguidance.LLTokenizer`.
    """
    require("llguidance", "transformers")
    from llguidance.hf import from_tokenizer

    return from_tokenizer(tokenizer, n_vocab=vocab_size, eos_token=sorted(eos_ids) or None)


class GrammarLogitsProcessor:
    """A `transformers` logits processor that keeps each sequence of a batch within a
    grammar (one llguidance matcher per sequence).

    Attributes:
        prompt_length: the (padded) prompt length: tokens past it were generated.
    """

    def __init__(self, tokenizer: Any, grammar: str, sequences: int, prompt_length: int) -> None:
        import llguidance

        self.matchers = [llguidance.LLMatcher(tokenizer, grammar) for _ in range(sequences)]
        self.prompt_length = prompt_length
        self.eos = list(tokenizer.eos_tokens)
        errors = {matcher.get_error() for matcher in self.matchers if matcher.is_error()}
        if errors:
            raise ValueError(f"The structured output has no usable grammar: {errors.pop()}")

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        """Masks the logits of the tokens each sequence's grammar does not allow next.

        Args:
            input_ids: the sequences so far, `(batch, length)`.
            scores: the next-token logits, `(batch, vocab)`.

        Returns:
            The masked logits.
        """
        import numpy as np
        import torch

        generated = input_ids.shape[1] - self.prompt_length
        vocab = scores.shape[-1]
        masks = []
        for row, matcher in enumerate(self.matchers):
            if generated > 0 and not matcher.is_stopped() and not matcher.is_error():
                matcher.consume_token(int(input_ids[row, -1]))
            if matcher.is_stopped() or matcher.is_error():
                allowed = np.zeros(vocab, dtype=bool)
                allowed[self.eos] = True  # finished (padding follows) or broken: end it
            else:
                bits = np.frombuffer(matcher.compute_bitmask(), dtype=np.uint8)
                allowed = np.unpackbits(bits, bitorder="little")[:vocab].astype(bool)
                if allowed.shape[0] < vocab:
                    allowed = np.pad(allowed, (0, vocab - allowed.shape[0]))
            masks.append(allowed)
        mask = torch.from_numpy(np.stack(masks)).to(scores.device)
        return scores.masked_fill(~mask, float("-inf"))
