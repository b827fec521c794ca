"""Keeping `datasets`' own progress bars out of potstill's display.

`datasets` prints tqdm bars ("Saving the dataset (1/1 shards)", "Map", ...) to stderr. Beside
rich's live progress display they break its lines, so a pipeline run and `Distiset` saving
turn them off for their duration and then put back whatever the user had chosen.

Turning them off means importing `datasets`, about half a second. A run whose steps do not
use `datasets` needs it only at its end, to build the `Distiset`; so when it is not imported
yet, the run asks for the import to be deferred and starts it in a background thread once its
steps are loaded (`import_in_background`): a run that waits on an LLM's answers does not wait
for the import as well. The block waits for that thread before it ends.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import Any, Optional

from potstill.utils.gc_freeze import collections_paused

# Modules whose steps call `datasets` while a pipeline runs (loading or pushing datasets).
_DATASETS_STEP_MODULES = (
    "potstill.steps.generators.huggingface",
    "potstill.steps.generators.dataset_loader",
    "potstill.steps.globals.huggingface",
)

_lock = threading.Lock()
_depth = 0
_restore = False
_deferred = False  # the bars are to be turned off once `datasets` is imported
_importing: Optional[threading.Thread] = None


@contextlib.contextmanager
def quiet_datasets_progress(defer_import: bool = False) -> Iterator[None]:
    """Turns `datasets`' progress bars off inside the block, then restores the setting.

    Blocks may nest or overlap (several runs in threads): the bars come back when the last
    one ends, and only if they were on before the first began. An explicit
    `HF_DATASETS_DISABLE_PROGRESS_BARS=0` in the environment is respected.

    Args:
        defer_import: nothing in the block uses `datasets` before `import_in_background()`
            is called (see the module docstring); without it, `datasets` is imported now.
    """
    global _depth, _deferred, _importing
    with _lock:
        _depth += 1
        if _depth == 1:
            _importing = None
            _deferred = defer_import and "datasets" not in sys.modules
            if not _deferred:
                _quiet()
        elif _deferred and not defer_import:  # a block that uses `datasets` joins in
            _deferred = False
            _quiet()
    try:
        yield
    finally:
        importing = _importing
        if importing is not None:
            importing.join()
        with _lock:
            _depth -= 1
            if _depth == 0:
                _deferred = False
                _loud()


def import_in_background() -> None:
    """Starts the deferred import of `datasets` (and turns its bars off once imported)."""
    global _importing
    with _lock:
        if _deferred and _importing is None:
            _importing = threading.Thread(
                target=_import_and_quiet, name="potstill-import-datasets", daemon=True
            )
            _importing.start()


def steps_use_datasets(steps: Iterable[Any]) -> bool:
    """Whether any of the steps may call `datasets` during a run: potstill's loaders and
    pushers of datasets, and any step defined outside potstill."""
    for step in steps:
        module = type(step).__module__
        if not module.startswith("potstill.") or module in _DATASETS_STEP_MODULES:
            return True
    return False


def _import_and_quiet() -> None:
    global _deferred
    try:
        with collections_paused():
            import datasets  # noqa: F401
    except Exception:  # reported by whoever imports it for use
        return
    with _lock:
        if _depth > 0 and _deferred:
            _deferred = False
            _quiet()


def _quiet() -> None:
    """Turns the bars off unless they are off already or the environment forces them on
    (called with `_lock` held)."""
    global _restore
    from datasets import config
    from datasets.utils.tqdm import are_progress_bars_disabled, disable_progress_bars

    # `disable_progress_bars` would only warn when the environment forces them on.
    forced_on = config.HF_DATASETS_DISABLE_PROGRESS_BARS is False
    _restore = not forced_on and not are_progress_bars_disabled()
    if _restore:
        disable_progress_bars()


def _loud() -> None:
    """Puts the bars back if `_quiet` turned them off (called with `_lock` held)."""
    global _restore
    if _restore:
        from datasets.utils.tqdm import enable_progress_bars

        enable_progress_bars()
        _restore = False
