"""Loading an LLM once per pipeline run, however many steps share it.

Two tasks can share one LLM instance (to share its limits, or one local model). Each task
loads its LLM in `load()`; inside a pipeline run the engine opens a loading scope so that only
the first of them really loads it. Outside a run (a task loaded by hand) `load()` always loads.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator
from typing import Any, Optional

_scope: contextvars.ContextVar[Optional[set[int]]] = contextvars.ContextVar(
    "potstill_loaded_llms", default=None
)
_lock = threading.Lock()


@contextlib.contextmanager
def loading_scope() -> Iterator[None]:
    """Within this block (and the threads it hands work to), each LLM loads once."""
    token = _scope.set(set())
    try:
        yield
    finally:
        _scope.reset(token)


def load_llm(llm: Any) -> None:
    """Loads `llm` unless another step of the same run already did."""
    loaded = _scope.get()
    if loaded is not None:
        with _lock:
            if id(llm) in loaded:
                return
            loaded.add(id(llm))
    llm.load()
