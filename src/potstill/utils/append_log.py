"""Append-only line logs that survive `kill -9`, written with or without a system call.

Two flavours of the same idea, one line per record:

- `MappedLog` writes through a shared memory map of the file. An append is a memory copy: no
  system call, no lock on the interpreter released and retaken, yet the bytes belong to the
  kernel's page cache the moment they are copied, so killing the process does not lose them.
  Only one process may append to a given file at a time (each keeps its own end offset).
- `AppendLog` writes each line with one `write` on a file opened in append mode, which the
  kernel keeps atomic per line, so several processes may append to the same file.

Either way a reader gets every complete line; a line cut short by a kill, and the zero
padding a memory map leaves behind, are skipped.
"""

from __future__ import annotations

import mmap
import os
import threading
from pathlib import Path
from typing import Optional

_GROWTH = 1 << 20  # grow the mapped file by at least 1 MiB at a time


def read_lines(path: Path) -> list[bytes]:
    """The complete lines of a log file (without their newlines)."""
    if not path.exists():
        return []
    data = path.read_bytes()
    data = data.split(b"\x00", 1)[0]  # a mapped log's unused tail is zeros
    lines = data.split(b"\n")
    return [line for line in lines[:-1] if line]  # the last piece has no newline: incomplete


class AppendLog:
    """Appends lines with one `write` each (safe with several writer processes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd: Optional[int] = None

    def append(self, line: bytes) -> None:
        """Appends one line (a newline is added)."""
        with self._lock:
            if self._fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.write(self._fd, line + b"\n")

    def close(self) -> None:
        """Closes the file (it reopens on the next append)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


class MappedLog:
    """Appends lines by copying them into a shared memory map of the file (one writer)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd: Optional[int] = None
        self._map: Optional[mmap.mmap] = None
        self._end = 0
        self._size = 0

    def append(self, line: bytes) -> None:
        """Appends one line (a newline is added)."""
        data = line + b"\n"
        with self._lock:
            if self._map is None:
                self._open()
            if self._end + len(data) > self._size:
                self._grow(self._end + len(data))
            assert self._map is not None
            self._map[self._end : self._end + len(data)] = data
            self._end += len(data)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        # Continue after the last complete line of an earlier session (killed or not).
        data = self.path.read_bytes().split(b"\x00", 1)[0]
        self._end = data.rfind(b"\n") + 1
        os.ftruncate(self._fd, self._end)
        self._size = 0
        self._grow(self._end + 1)

    def _grow(self, needed: int) -> None:
        assert self._fd is not None
        size = max(needed, self._size * 2, self._end + _GROWTH)
        if self._map is not None:
            self._map.close()
        os.ftruncate(self._fd, size)
        self._map = mmap.mmap(self._fd, size)
        self._size = size

    def close(self) -> None:
        """Unmaps and trims the file to its content (it reopens on the next append)."""
        with self._lock:
            if self._map is not None:
                self._map.close()
                self._map = None
            if self._fd is not None:
                os.ftruncate(self._fd, self._end)
                os.close(self._fd)
                self._fd = None
