"""The lock that keeps two runs of one pipeline from writing to its folder at once.

Two processes (or two runs in one process) that share a pipeline's name and cache directory
would write the same batches and journals and corrupt them for every later run. A run holds
an exclusive OS lock (`flock`) on `<cache_dir>/<name>/run.lock` from start to end; a second run
is refused with the holder's pid and host. The kernel releases the lock when its process
ends, however it ends, so a run killed with `kill -9` never blocks the next one.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Optional

from potstill.errors import PipelineBusyError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

_LOCK_FILE = "run.lock"


class RunLock:
    """An exclusive lock on one pipeline's folder, held by one run at a time."""

    def __init__(self, root: Path, pipeline_name: str) -> None:
        self.path = root / _LOCK_FILE
        self.pipeline_name = pipeline_name
        self._fd: Optional[int] = None

    def acquire(self) -> None:
        """Takes the lock, or raises `PipelineBusyError` naming the run that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _lock(fd)
        except OSError:
            os.close(fd)
            raise PipelineBusyError(self._busy_message()) from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Lets the next run take the lock (the file stays: deleting it would race)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.ftruncate(fd, 0)
            os.close(fd)  # closing the descriptor releases the lock

    def _busy_message(self) -> str:
        holder = _read_holder(self.path)
        if holder:
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("since", 0)))
            who = f"process {holder.get('pid')} on host {holder.get('host')!r} (since {since})"
            if holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
                who = f"this process ({holder.get('pid')}), in another run started {since}"
        else:
            who = "another process"
        return (
            f"Pipeline {self.pipeline_name!r} is already running in {who}, with its folder at "
            f"{str(self.path.parent)!r}. Two runs of one pipeline at once would corrupt what "
            "it stores, so this run was not started. Wait for that run to finish (or stop it), "
            "then run again to reuse what it stored; or give this run another `name` or "
            "`cache_dir` to run it separately."
        )


def _lock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    import msvcrt

    msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]


def _read_holder(path: Path) -> dict[str, Any]:
    # The holder writes its details right after locking: give it a moment.
    for _ in range(20):
        try:
            holder = json.loads(path.read_text())
            if isinstance(holder, dict):
                return holder
        except (OSError, ValueError):
            pass
        time.sleep(0.01)
    return {}
