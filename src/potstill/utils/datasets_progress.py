"""Keeping `datasets`' own progress bars out of potstill's display.

`datasets` prints tqdm bars ("Saving the dataset (1/1 shards)", "Map", ...) to stderr. Beside
rich's live progress display they break its lines, so a pipeline run and `Distiset` saving
turn them off for their duration and then put back whatever the user had chosen.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_depth = 0
_restore = False


@contextlib.contextmanager
def quiet_datasets_progress() -> Iterator[None]:
    """Turns `datasets`' progress bars off inside the block, then restores the setting.

    Blocks may nest or overlap (several runs in threads): the bars come back when the last
    one ends, and only if they were on before the first began. An explicit
    `HF_DATASETS_DISABLE_PROGRESS_BARS=0` in the environment is respected.
    """
    global _depth, _restore
    from datasets import config
    from datasets.utils.tqdm import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    with _lock:
        if _depth == 0:
            # `disable_progress_bars` would only warn when the environment forces them on.
            forced_on = config.HF_DATASETS_DISABLE_PROGRESS_BARS is False
            _restore = not forced_on and not are_progress_bars_disabled()
            if _restore:
                disable_progress_bars()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _restore:
                enable_progress_bars()
                _restore = False
