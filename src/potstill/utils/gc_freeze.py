"""Keeping the garbage collector's full collections off the objects a run did not create.

A full collection walks every object the collector tracks: once `datasets`, `pyarrow` and
`pandas` are imported that is over 100,000 objects, 50-70 ms a collection. A fast run triggers
one every few thousand rows (the rows in flight live long enough to count as long-lived), so
they cost a run of 100,000 rows about a fifth of its time. While a run goes, the objects that
existed before it are set aside (`gc.freeze()`), so a collection walks only what the run
created; they are handed back when the last run in the process ends (`gc.unfreeze()`), and a
cycle among them that became garbage meanwhile is collected by the next full collection.

A program that froze objects itself (e.g. before forking workers) or turned the collector off
is left as it is.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_runs = 0
_froze = False


@contextlib.contextmanager
def older_objects_frozen() -> Iterator[None]:
    """Within this block, full collections skip the objects that existed before it (see the
    module docstring); blocks may overlap (runs in several threads)."""
    global _runs, _froze
    with _lock:
        if _runs == 0:
            _froze = gc.isenabled() and gc.get_freeze_count() == 0
            if _froze:
                gc.freeze()
        _runs += 1
    try:
        yield
    finally:
        with _lock:
            _runs -= 1
            if _runs == 0 and _froze:
                gc.unfreeze()
                _froze = False
