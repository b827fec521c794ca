"""What the local-model LLMs (Transformers, vLLM) share."""

from __future__ import annotations

from typing import Callable


def load_or_release(load: Callable[[], None], release: Callable[[], None]) -> None:
    """Runs `load`; when it fails, `release` frees what it had acquired before the error
    goes on. (`LLM.load`'s wrapper then marks the LLM as not loaded.)

    Args:
        load: loads the model (and what goes with it).
        release: frees whatever `load` acquired, even when it stopped halfway.
    """
    try:
        load()
    except BaseException:
        release()
        raise
