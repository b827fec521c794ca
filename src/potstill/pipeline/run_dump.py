"""The dump of each step that a run makes once, for its signature and its `pipeline.yaml`.

`step.dump()` copies every value, so a step holding a large inline dataset (e.g.
`LoadDataFromDicts(data=...)`) is copied whole at the start of every run: 25 MB for 100,000
short rows, memory the process keeps afterwards. When a field holds a long list of rows that
are plain JSON values already (dicts with text keys, lists, text, numbers, booleans, `None`),
its dump would be an equal copy, so the run's dump refers to the step's own rows instead. It
is only read (hashed into the signature and written to `pipeline.yaml`) before any step runs,
then dropped.
"""

from __future__ import annotations

import math
from typing import Any

from potstill.steps.base import _Step

MIN_ROWS = 1000
"""Lists of fewer rows are copied by `dump()` as usual."""


def run_dump(step: _Step) -> dict[str, Any]:
    """`step.dump()`, long lists of plain rows referred to instead of copied.

    Args:
        step: the step.

    Returns:
        A dump equal to `step.dump()`; do not change it.
    """
    rows = {}
    for name in type(step).model_fields:
        value = getattr(step, name, None)
        if type(value) is list and len(value) >= MIN_ROWS and all(map(_plain, value)):
            rows[name] = value
    if not rows:
        return step.dump()
    dump = step.model_copy(update={name: [] for name in rows}).dump()
    for name, value in rows.items():
        if name in dump:  # (a field left out of dumps stays out)
            dump[name] = value
    return dump


def _plain(value: Any) -> bool:
    """Whether `value` is a JSON value that a JSON dump would give back equal (no tuple, no
    float that is not finite, no key that is not text)."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return math.isfinite(value)
    if kind is dict:
        return all(type(key) is str and _plain(item) for key, item in value.items())
    if kind is list:
        return all(map(_plain, value))
    return False
