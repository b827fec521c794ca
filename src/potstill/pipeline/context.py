"""The pipeline that steps created inside `with Pipeline(...):` register with.

A context variable rather than a class attribute: pipelines built in different threads or
tasks do not see each other, and `with` blocks nest.
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from potstill.pipeline.base import Pipeline

_current: contextvars.ContextVar[Optional[Pipeline]] = contextvars.ContextVar(
    "potstill_current_pipeline", default=None
)


def current_pipeline() -> Optional[Pipeline]:
    """The pipeline of the innermost active `with Pipeline(...)` block, if any."""
    return _current.get()


def enter_pipeline(pipeline: Pipeline) -> contextvars.Token[Optional[Pipeline]]:
    """Makes `pipeline` the current one; returns the token for `exit_pipeline`."""
    return _current.set(pipeline)


def exit_pipeline(token: contextvars.Token[Optional[Pipeline]]) -> None:
    """Restores the pipeline that was current before `enter_pipeline`."""
    _current.reset(token)
