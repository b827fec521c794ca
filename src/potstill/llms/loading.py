"""Loading LLMs: the loaded check, and loading once per pipeline run.

`LLM` wraps the `load` of every subclass (`marks_loaded`: the LLM is loaded once it returns)
and its `generate`/`agenerate` (`requires_loaded`: a clear error before `load()`, not an
`AttributeError` deep in an SDK).

Two tasks can share one LLM instance (to share its limits, or one local model). Each task
loads its LLM in `load()`; inside a pipeline run the engine opens a loading scope so that only
the first of them really loads it. Outside a run (a task loaded by hand) `load()` always loads.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import threading
from collections.abc import Iterator
from typing import Any, Callable, Optional

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


def marks_loaded(load: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps a subclass's `load` so that the LLM counts as loaded once it returns, and not
    loaded when it raises."""

    @functools.wraps(load)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            result = load(self, *args, **kwargs)
        except BaseException:
            # `super().load()` may have marked it loaded before the subclass's part failed.
            self._loaded = False
            raise
        self._loaded = True
        return result

    return wrapper


def requires_loaded(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps a subclass's `generate`/`agenerate` so that it refuses to run unloaded."""
    if inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def async_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            self._ensure_loaded(method.__name__)
            return await method(self, *args, **kwargs)

        async_wrapper._potstill_checked = True  # type: ignore[attr-defined]
        return async_wrapper

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        self._ensure_loaded(method.__name__)
        return method(self, *args, **kwargs)

    wrapper._potstill_checked = True  # type: ignore[attr-defined]
    return wrapper
