"""Deterministic, plausible token log-probabilities in OpenAI's ``logprobs.content`` shape."""

from __future__ import annotations

import hashlib
from typing import Any


def token_logprob(token: str, position: int, rank: int = 0) -> float:
    """Return a deterministic negative log-probability.

    Args:
        token: The token text.
        position: Index of the token in the answer.
        rank: 0 for the chosen token, k for the k-th alternative (lower values).

    Returns:
        A float in (-(rank + 1) * 2, -rank * 2 - 0.0001]: chosen tokens score highest.
    """
    digest = hashlib.sha256(f"{position}\x00{rank}\x00{token}".encode()).digest()
    fraction = int.from_bytes(digest[:4], "big") / 2**32
    return -round(rank * 2.0 + 0.0001 + fraction * 1.9, 6)


def split_tokens(text: str) -> list[str]:
    """Split text into whitespace tokens, keeping a leading space on all but the first.

    Concatenating the tokens gives back the text with its whitespace collapsed.

    Args:
        text: The answer text.

    Returns:
        The tokens.
    """
    words = text.split()
    return [word if i == 0 else f" {word}" for i, word in enumerate(words)]


def token_entry(token: str, position: int, top_n: int) -> dict[str, Any]:
    """Build one ``ChatCompletionTokenLogprob``-shaped entry.

    Args:
        token: The chosen token.
        position: Its index in the answer.
        top_n: How many ``top_logprobs`` alternatives to list (the chosen token first).

    Returns:
        A dict with ``token``, ``logprob``, ``bytes`` and ``top_logprobs``.
    """
    top: list[dict[str, Any]] = []
    for rank in range(top_n):
        candidate = token if rank == 0 else f"{token}~{rank}"
        top.append(
            {
                "token": candidate,
                "logprob": token_logprob(candidate, position, rank),
                "bytes": list(candidate.encode()),
            }
        )
    return {
        "token": token,
        "logprob": token_logprob(token, position),
        "bytes": list(token.encode()),
        "top_logprobs": top,
    }


def logprobs_content(text: str | None, top_n: int) -> list[dict[str, Any]]:
    """Build the ``logprobs.content`` list for an answer.

    Args:
        text: The answer text (None gives an empty list).
        top_n: The requested ``top_logprobs`` count.

    Returns:
        One entry per whitespace token.
    """
    return [token_entry(tok, i, top_n) for i, tok in enumerate(split_tokens(text or ""))]
