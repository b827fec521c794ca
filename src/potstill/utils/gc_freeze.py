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

`datasets` is imported during a run when no step needs it before the end (see
`datasets_progress`): its ~100,000 long-lived objects would cost the run several collections
(about 60 ms on the first run of 10,000 rows). The collector pauses for that import
(`collections_paused`), and what it created is set aside with the older objects.
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


@contextlib.contextmanager
def collections_paused() -> Iterator[None]:
    """Within this block the collector does not run (for an import of many long-lived
    modules during a run). At its end, what exists is set aside with the older objects when
    a run has set them aside, else moved to the oldest generation: the collector does not
    walk all that the block created at once (see the module docstring)."""
    with _lock:
        paused = gc.isenabled()
        if paused:
            gc.disable()
    try:
        yield
    finally:
        with _lock:
            if paused:
                if _froze:
                    gc.freeze()
                elif gc.get_freeze_count() == 0:  # nothing frozen by the program
                    gc.freeze()
                    gc.unfreeze()  # frozen objects come back in the oldest generation
                gc.enable()
