"""The request journals and the response cache of a run on Ray, without a shared filesystem.

The files stay where the local engine keeps them, on the driver's machine: a `StoreSink`
actor, pinned to the driver's node, owns them (each step's `requests.jsonl`, and the
`responses.jsonl` of the response cache when it is on). Replicas reach it through
`RemoteJournal` and `RemoteCache`, which stand in for the `AnswerFile`s of
`potstill.llms.cache` (the same keys, so a run can resume on Ray what ran locally and the
other way round):

- before each batch, a replica fetches the journal entries of the batch's rows (one call):
  what an earlier run (or an earlier attempt of the batch) answered is not requested again;
- new answers are buffered and sent to the sink in the background (`AnswerBuffer`: every
  `FLUSH_INTERVAL_S`, every `FLUSH_SIZE` answers, and at the end of each batch). A driver
  killed with `kill -9` loses at most the answers of each replica's last interval: they are
  requested again when the run resumes;
- the response cache is shared by every run, so it is not fetched whole: a replica gets the
  cache's keys when it starts, and fetches the answer of a key the cache has when a request
  needs it.
"""

from __future__ import annotations

import copy
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

from potstill.errors import PipelineBusyError
from potstill.llms.cache import AnswerFile
from potstill.llms.typing import Generations

FLUSH_INTERVAL_S = 0.1
"""The longest a replica keeps new answers before sending them to the sink."""
FLUSH_SIZE = 32
"""A replica sends its new answers as soon as it has this many."""
_LOCK_WAIT_S = 60.0

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

Entries = list[tuple[str, Generations]]


class _ServedFile(AnswerFile):
    """An answer file whose answers stay in memory, those appended by this run too (an
    `AnswerFile` keeps only their keys' hashes): the sink serves them to replicas for the
    whole run, by row or by key."""

    def put(self, key: str, generations: Generations) -> None:
        known = key in self._index
        super().put(key, generations)
        if known or hash(key) not in self._written:
            return  # not written (an error, closed), or already held
        self._written.discard(hash(key))  # every answer of this file is in `_index`
        self._index[key] = (
            tuple(generations),
            tuple(generations.input_tokens),
            tuple(generations.output_tokens),
        )
        self._added(key)

    def _added(self, key: str) -> None:
        """Called for each answer this run appended."""


class _RowJournal(_ServedFile):
    """A step's journal, with its entries indexed by row (keys end with `:<row>`).

    It holds a lock on the journal (`requests.jsonl.lock`) while open: the sink of a run
    whose driver was killed may outlive it for a moment, and must not write beside the next
    run's sink.
    """

    def __init__(self, path: Path) -> None:
        self._lock_fd = _lock_file(path.with_name(path.name + ".lock"))
        super().__init__(path, per_row=True)
        self._rows: dict[int, list[str]] = {}
        for key in self._index:
            self._added(key)

    def _added(self, key: str) -> None:
        row = key.rpartition(":")[2]
        if row.isdigit():
            self._rows.setdefault(int(row), []).append(key)

    def release(self) -> None:
        super().release()
        os.close(self._lock_fd)  # releases the lock

    def rows(self, start: int, stop: int) -> dict[str, Generations]:
        """The entries of rows `start` to `stop - 1`."""
        found = {
            key: self.get(key) for row in range(start, stop) for key in self._rows.get(row, ())
        }
        return {key: answer for key, answer in found.items() if answer is not None}


def _lock_file(path: Path) -> int:
    """An exclusive lock on `path` (waiting for a holder that is going away)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    if fcntl is None:  # Windows: no lock
        return fd
    deadline = time.monotonic() + _LOCK_WAIT_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except OSError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise PipelineBusyError(
                    f"{path} is held by another run's store for more than "
                    f"{_LOCK_WAIT_S:g} s; is another run of this pipeline going on?"
                ) from None
            time.sleep(0.05)


class _Cache(_ServedFile):
    """The response cache, whose keys are listed for the replicas."""

    def keys(self) -> list[str]:
        """The keys of every answer it holds."""
        return list(self._index)


class StoreSink:
    """Owns the journals and the response cache of a run (a Ray actor on the driver's
    node; see the module docstring)."""

    def __init__(self) -> None:
        self._journals: dict[str, _RowJournal] = {}
        self._caches: dict[str, _Cache] = {}

    def open_journal(self, step: str, path: str) -> int:
        """Opens step `step`'s journal at `path`; returns how many answers it holds."""
        if step not in self._journals:
            self._journals[step] = _RowJournal(Path(path))
        return len(self._journals[step])

    def recall(self, step: str, start: int, stop: int) -> dict[str, Generations]:
        """The journal entries of the step's rows `start` to `stop - 1`."""
        return self._journals[step].rows(start, stop)

    def append(self, step: str, entries: Entries) -> None:
        """Appends new answers to the step's journal."""
        journal = self._journals[step]
        for key, generations in entries:
            journal.put(key, generations)

    def cache_keys(self, path: str) -> list[str]:
        """Opens the response cache at `path`; returns the keys it holds."""
        return self._cache(path).keys()

    def cache_get(self, path: str, keys: list[str]) -> dict[str, Generations]:
        """The cached answers of `keys` (those it has)."""
        cache = self._cache(path)
        found = {key: cache.get(key) for key in keys}
        return {key: value for key, value in found.items() if value is not None}

    def cache_put(self, path: str, entries: Entries) -> None:
        """Adds new answers to the response cache."""
        cache = self._cache(path)
        for key, generations in entries:
            cache.put(key, generations)

    def _cache(self, path: str) -> _Cache:
        if path not in self._caches:
            self._caches[path] = _Cache(Path(path))
        return self._caches[path]

    def close(self) -> None:
        """Closes every file."""
        for store in [*self._journals.values(), *self._caches.values()]:
            store.release()
        self._journals, self._caches = {}, {}


class AnswerBuffer:
    """New answers of one replica on their way to the sink (thread-safe: a synchronous
    step answers from its worker thread).

    Args:
        send: sends a list of entries (a fire-and-forget actor call).
    """

    def __init__(self, send: Callable[[Entries], Any]) -> None:
        self._send = send
        self._entries: Entries = []
        self._lock = threading.Lock()

    def add(self, key: str, generations: Generations) -> None:
        """Keeps one answer; sends the buffer when it is full."""
        with self._lock:
            self._entries.append((key, generations))
            full = len(self._entries) >= FLUSH_SIZE
        if full:
            self.flush()

    def flush(self) -> Any:
        """Sends what is buffered; returns the call's reference (`None` when empty)."""
        with self._lock:
            entries, self._entries = self._entries, []
        return self._send(entries) if entries else None


class RemoteJournal:
    """A step's journal as a replica sees it: the entries of the batch's rows, fetched from
    the sink, and new answers sent back (an `AnswerFile` stand-in, per row).

    Args:
        known: the journal entries of the batch's rows.
        buffer: where new answers go.
    """

    per_row = True

    def __init__(self, known: dict[str, Generations], buffer: AnswerBuffer) -> None:
        self._known = known
        self._buffer = buffer

    def key(self, request_key: str, row: int) -> str:
        """The entry key of a request for row `row` (as in the step's journal file)."""
        return f"{request_key}:{row}"

    def get(self, key: str) -> Optional[Generations]:
        """The answer the journal has for `key` (a copy), if any."""
        found = self._known.get(key)
        return copy.copy(found) if found is not None else None

    def put(self, key: str, generations: Generations) -> None:
        """Keeps a new answer (answers with errors are not kept)."""
        if any(error is not None for error in generations.errors) or key in self._known:
            return
        self._known[key] = generations
        self._buffer.add(key, generations)


class RemoteCache:
    """The response cache as a replica sees it (an `AnswerFile` stand-in, per request).

    Args:
        fetch: returns the cached answers of a list of keys (a call to the sink).
        keys: the keys the cache held when the replica started.
        buffer: where new answers go.
    """

    per_row = False

    def __init__(
        self,
        fetch: Callable[[list[str]], dict[str, Generations]],
        keys: set[str],
        buffer: AnswerBuffer,
    ) -> None:
        self._fetch = fetch
        self._stored = keys
        self._known: dict[str, Generations] = {}
        self._buffer = buffer

    def key(self, request_key: str, row: int) -> str:
        """The entry key of a request (the same for every row)."""
        return request_key

    def get(self, key: str) -> Optional[Generations]:
        """The cached answer of `key` (a copy), fetched from the sink the first time."""
        found = self._known.get(key)
        if found is None and key in self._stored:
            found = self._fetch([key]).get(key)
            if found is not None:
                self._known[key] = found
        return copy.copy(found) if found is not None else None

    def put(self, key: str, generations: Generations) -> None:
        """Adds a new answer (answers with errors are not kept)."""
        if any(error is not None for error in generations.errors):
            return
        if key in self._known or key in self._stored:
            return
        self._known[key] = generations
        self._buffer.add(key, generations)
