"""Append-only line logs that survive `kill -9`, written with or without a system call.

Two flavours of the same idea, one line per record:

- `MappedLog` writes through a shared memory map of the file. An append is a memory copy: no
  system call, no lock on the interpreter released and retaken, yet the bytes belong to the
  kernel's page cache the moment they are copied, so killing the process does not lose them.
  Only one process may append to a given file at a time (each keeps its own end offset).
- `AppendLog` writes each line with one `write` on a file opened in append mode, which the
  kernel keeps atomic per line, so several processes may append to the same file.

Either way a reader gets every complete line; a line cut short by a kill, and the zero
padding a memory map leaves behind, are skipped. A line damaged on disk (changed bytes, a
stray NUL) costs only itself: `seal` prefixes each record with its CRC-32 and `unseal`
rejects a line whose checksum does not match.
"""

from __future__ import annotations

import mmap
import os
import threading
import zlib
from pathlib import Path
from typing import Optional

_GROWTH = 1 << 20  # grow the mapped file by at least 1 MiB at a time
_SEAL_HEAD = b'{"c":"'
_SEAL_LENGTH = len(_SEAL_HEAD) + 8 + 2  # '{"c":"' + 8 hex digits + '",'


def read_lines(path: Path) -> list[bytes]:
    """The complete lines of a log file (without their newlines).

    The zero padding a mapped log leaves at its end is skipped; a NUL byte anywhere else is
    damage, which stays inside its own line (the caller rejects that line, not the rest).
    """
    if not path.exists():
        return []
    data = path.read_bytes().rstrip(b"\x00")  # a mapped log's unused tail is zeros
    lines = data.split(b"\n")
    return [line for line in lines[:-1] if line]  # the last piece has no newline: incomplete


def read_line(path: Path, offset: int) -> Optional[bytes]:
    """The line that starts at `offset` in a log file (without its newline), or `None` when
    it is not complete."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            line = handle.readline()
    except OSError:
        return None
    return line[:-1] if line.endswith(b"\n") else None


def seal(record: bytes) -> bytes:
    """A JSON object's text with its CRC-32 as first member: `{"c":"<crc>",...}`.

    The line stays a JSON object; `unseal` checks the rest of the line against the CRC.

    Args:
        record: the UTF-8 text of a JSON object (`{...}`, not empty).

    Returns:
        The sealed line (without newline).
    """
    return b'%s%08x",%s' % (_SEAL_HEAD, zlib.crc32(record), record[1:])


def unseal(line: bytes) -> Optional[bytes]:
    """The record `seal` wrapped, or `None` when the line is damaged.

    A line without a seal (written before lines were sealed) is returned as it is.
    """
    if not line.startswith(_SEAL_HEAD):
        return line if b"\x00" not in line else None
    record = b"{" + line[_SEAL_LENGTH:]
    try:
        expected = int(line[len(_SEAL_HEAD) : len(_SEAL_HEAD) + 8], 16)
    except ValueError:
        return None
    if line[_SEAL_LENGTH - 2 : _SEAL_LENGTH] != b'",' or zlib.crc32(record) != expected:
        return None
    return record


class AppendLog:
    """Appends lines with one `write` each (safe with several writer processes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd: Optional[int] = None

    def append(self, line: bytes) -> int:
        """Appends one line (a newline is added); returns where in the file it starts."""
        data = line + b"\n"
        with self._lock:
            if self._fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.write(self._fd, data)
            # With O_APPEND the write lands at the end whatever other writers did, and
            # leaves this descriptor's offset right after it.
            return os.lseek(self._fd, 0, os.SEEK_CUR) - len(data)

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

    def append(self, line: bytes) -> int:
        """Appends one line (a newline is added); returns where in the file it starts."""
        data = line + b"\n"
        with self._lock:
            if self._map is None:
                self._open()
            start = self._end
            if start + len(data) > self._size:
                self._grow(start + len(data))
            assert self._map is not None
            self._map[start : start + len(data)] = data
            self._end = start + len(data)
            return start

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        # Continue after the last complete line of an earlier session (killed or not); only
        # the trailing zeros are padding (a NUL inside the log is damage to one line).
        data = self.path.read_bytes().rstrip(b"\x00")
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
