"""The durable per-run store: every finished batch of every step, on disk.

Layout under the cache directory:

```
<cache_dir>/<pipeline name>/
    pipeline.yaml                       # the last run's configuration
    steps/<step name>-<signature>/      # one folder per step configuration
        000000.arrow                    # the step's output for its input batch 0
        000001-000004.arrow             # batches 1 to 4, written together
        requests.jsonl                  # the journal: every answered LLM request
        _complete.json                  # written once the step has finished
```

A step's signature hashes its configuration and the signatures of the steps feeding it, so
changing a step invalidates that step and what is downstream of it, nothing else.

Each file is written under a temporary name and renamed, so it exists whole or not at all: a
killed run leaves only complete batches behind, and the next run skips them. Writes happen
in one background thread, so the event loop never waits on disk; when batches arrive faster
than the thread writes them, it writes each run of consecutive batches of a step as one file,
so the cost per batch falls as the load rises.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import shutil
import threading
from pathlib import Path
from typing import Any, Optional

from potstill.llms.cache import ResponseStore, forget_store, open_store
from potstill.typing import Row

_COMPLETE_MARKER = "_complete.json"
_JOURNAL = "requests.jsonl"
_FILE_NAME = re.compile(r"^(\d{6,})(?:-(\d{6,}))?\.(arrow|json)$")
_COUNTS_KEY = b"potstill_batch_rows"


class StepStore:
    """The stored output batches of one step configuration."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._index: Optional[dict[int, tuple[str, int]]] = None
        self._cached: tuple[str, Any] = ("", None)

    # -- index -------------------------------------------------------------------------

    def _ensure_index(self) -> dict[int, tuple[str, int]]:
        with self._lock:
            if self._index is None:
                self._index = {}
                if self.path.is_dir():
                    for entry in os.scandir(self.path):
                        match = _FILE_NAME.match(entry.name)
                        if match:
                            first = int(match.group(1))
                            last = int(match.group(2) or first)
                            for position, seq in enumerate(range(first, last + 1)):
                                self._index[seq] = (entry.name, position)
            return self._index

    def stored_batches(self) -> list[int]:
        """Sequence numbers of the batches on disk, in order."""
        return sorted(self._ensure_index())

    def has(self, seq: int) -> bool:
        """Whether batch `seq` is on disk."""
        return seq in self._ensure_index()

    # -- writing -----------------------------------------------------------------------

    def write(self, seq: int, rows: list[Row]) -> None:
        """Writes one batch."""
        self.write_run([(seq, rows)])

    def write_run(self, batches: list[tuple[int, list[Row]]]) -> None:
        """Writes consecutive batches as one file (Arrow; JSON when Arrow cannot hold them).

        Args:
            batches: `(seq, rows)` pairs with consecutive `seq`s.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        first, last = batches[0][0], batches[-1][0]
        stem = f"{first:06d}" if first == last else f"{first:06d}-{last:06d}"
        try:
            _write_arrow(self.path / f"{stem}.arrow", batches)
            name = f"{stem}.arrow"
        except Exception:
            if len(batches) > 1:  # one odd batch should not force JSON on the others
                for single in batches:
                    self.write_run([single])
                return
            text = json.dumps(batches[0][1], default=repr, ensure_ascii=False)
            _atomic_write(
                self.path / f"{stem}.json", lambda tmp: Path(tmp).write_text(text, "utf-8")
            )
            name = f"{stem}.json"
        with self._lock:
            if self._index is not None:
                for position, (seq, _) in enumerate(batches):
                    self._index[seq] = (name, position)

    # -- reading -----------------------------------------------------------------------

    def read_table(self, seq: int) -> Any:
        """Batch `seq` as a `pyarrow.Table`."""
        name, position = self._ensure_index()[seq]
        table = self._read_file(name)
        counts = _batch_counts(table)
        if counts is None:
            return table
        start = sum(counts[:position])
        return table.slice(start, counts[position])

    def read(self, seq: int) -> list[Row]:
        """Batch `seq` as rows."""
        return self.read_table(seq).to_pylist()

    def read_all_tables(self, columns: Optional[list[str]] = None) -> list[Any]:
        """Every stored file as a table, in batch order.

        Args:
            columns: read only these columns (those a file has; every row still counts).
        """
        index = self._ensure_index()
        names = list(dict.fromkeys(index[seq][0] for seq in sorted(index)))
        return [self._read_file(name, cache=False, columns=columns) for name in names]

    def _read_file(self, name: str, cache: bool = True, columns: Optional[list[str]] = None) -> Any:
        import pyarrow.feather as feather

        if self._cached[0] == name:
            return _select(self._cached[1], columns)
        path = self.path / name
        if name.endswith(".arrow"):
            if columns is not None:
                return _read_arrow_columns(path, columns)
            table = feather.read_table(path, memory_map=False)
        else:
            table = rows_to_table(json.loads(path.read_text("utf-8")))
        if cache and columns is None:
            self._cached = (name, table)
        return _select(table, columns)

    # -- completion ----------------------------------------------------------------------

    def mark_complete(self, batches: int, rows: int) -> None:
        """Records that the step finished with `batches` batches and `rows` rows."""
        self.path.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"batches": batches, "rows": rows})
        _atomic_write(self.path / _COMPLETE_MARKER, lambda tmp: Path(tmp).write_text(payload))

    def completion(self) -> Optional[dict[str, int]]:
        """`{"batches", "rows"}` when the step finished in an earlier run, else `None`."""
        marker = self.path / _COMPLETE_MARKER
        if not marker.exists():
            return None
        info: dict[str, int] = json.loads(marker.read_text())
        if all(self.has(seq) for seq in range(info["batches"])):
            return info
        return None

    def journal(self) -> ResponseStore:
        """The step's request journal: every answered request of its LLM, kept for resume."""
        return open_store(self.path / _JOURNAL, per_row=True)

    def clear(self) -> None:
        """Deletes everything stored for this step configuration."""
        forget_store(self.path / _JOURNAL)
        shutil.rmtree(self.path, ignore_errors=True)
        with self._lock:
            self._index = None
            self._cached = ("", None)


class RunStore:
    """The store of one pipeline: step stores plus the background writer."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._writer: Optional[_Writer] = None

    def step_store(self, step_name: str, signature: str) -> StepStore:
        """The store for one step configuration."""
        return StepStore(self.root / "steps" / f"{step_name}-{signature}")

    def submit(self, store: StepStore, seq: int, rows: list[Row]) -> None:
        """Queues a batch write."""
        self._get_writer().put(("batch", store, seq, rows))

    def submit_completion(self, store: StepStore, batches: int, rows: int) -> None:
        """Queues the completion marker; it is written after the step's batches."""
        self._get_writer().put(("complete", store, batches, rows))

    def _get_writer(self) -> _Writer:
        if self._writer is None:
            self._writer = _Writer()
        return self._writer

    def flush(self) -> None:
        """Waits for every queued write and re-raises the first write error."""
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Flushes and stops the writer thread."""
        if self._writer is not None:
            try:
                self._writer.flush()
            finally:
                self._writer.stop()
                self._writer = None

    def submit_config(self, dump: dict[str, Any]) -> Path:
        """Queues writing the pipeline's configuration; returns the path it goes to."""
        self._get_writer().put(("config", self, dump))
        return self.root / "pipeline.yaml"

    def write_config(self, dump: dict[str, Any]) -> Path:
        """Writes the pipeline's configuration as `pipeline.yaml` (unless it is unchanged)."""
        from potstill.utils.serialization import write_file

        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / "pipeline.yaml"
        digest = hashlib.sha256(json.dumps(dump, sort_keys=True, default=str).encode()).hexdigest()
        stamp = self.root / ".pipeline.yaml.sha256"
        if path.exists() and stamp.exists() and stamp.read_text() == digest:
            return path  # a big inline dataset makes YAML slow to write: skip when unchanged
        write_file(path, dump, "yaml")
        stamp.write_text(digest)
        return path


class _Writer:
    """The background thread that performs writes, grouping consecutive batches."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._done = threading.Condition()
        self._outstanding = 0
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name="potstill-store", daemon=True)
        self._thread.start()

    def put(self, item: tuple[Any, ...]) -> None:
        with self._done:
            self._outstanding += 1
        self._queue.put(item)

    def flush(self) -> None:
        with self._done:
            self._done.wait_for(lambda: self._outstanding == 0)
            error, self._error = self._error, None
        if error is not None:
            raise error

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            items = [self._queue.get()]
            while True:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stopping = items[-1] is None
            work = [item for item in items if item is not None]
            try:
                _perform(work)
            except BaseException as error:
                if self._error is None:
                    self._error = error
            finally:
                with self._done:
                    self._outstanding -= len(work)
                    self._done.notify_all()
            if stopping:
                return


def _perform(items: list[tuple[Any, ...]]) -> None:
    """Writes queued items in order, merging runs of consecutive batches of one step."""
    pending: dict[int, tuple[StepStore, list[tuple[int, list[Row]]]]] = {}

    def flush_store(store: StepStore) -> None:
        entry = pending.pop(id(store), None)
        if entry is None:
            return
        batches = sorted(entry[1], key=lambda batch: batch[0])
        run = [batches[0]]
        for batch in batches[1:]:
            if batch[0] == run[-1][0] + 1:
                run.append(batch)
            else:
                store.write_run(run)
                run = [batch]
        store.write_run(run)

    for item in items:
        kind, store = item[0], item[1]
        if kind == "config":
            store.write_config(item[2])
        elif kind == "batch":
            pending.setdefault(id(store), (store, []))[1].append((item[2], item[3]))
        else:
            flush_store(store)
            store.mark_complete(item[2], item[3])
    for store, _ in list(pending.values()):
        flush_store(store)


def _write_arrow(path: Path, batches: list[tuple[int, list[Row]]]) -> None:
    import pyarrow.feather as feather

    rows = [row for _, batch in batches for row in batch]
    table = rows_to_table(rows)
    if len(batches) > 1:
        counts = json.dumps([len(batch) for _, batch in batches]).encode()
        table = table.replace_schema_metadata(
            {**(table.schema.metadata or {}), _COUNTS_KEY: counts}
        )
    _atomic_write(path, lambda tmp: feather.write_feather(table, tmp, compression="uncompressed"))


def rows_to_table(rows: list[Row]) -> Any:
    """Rows as a `pyarrow.Table` with the union of their keys as columns.

    (`pyarrow.Table.from_pylist` takes the columns from the first row only and silently
    drops keys that appear later.)
    """
    import pyarrow as pa

    names = list(dict.fromkeys(key for row in rows for key in row))
    return pa.Table.from_pydict({name: [row.get(name) for row in rows] for name in names})


def _select(table: Any, columns: Optional[list[str]]) -> Any:
    """`table` with only those of `columns` it has (and all its rows)."""
    if columns is None:
        return table
    return table.select([name for name in columns if name in table.column_names])


def _read_arrow_columns(path: Path, columns: list[str]) -> Any:
    """Some columns of an Arrow file, read without the others."""
    import pyarrow as pa
    import pyarrow.feather as feather

    with pa.OSFile(str(path)) as source:
        reader = pa.ipc.open_file(source)
        present = [name for name in columns if name in reader.schema.names]
        if not present:  # nothing to read but the number of rows (batch headers only)
            return pa.table({"_": pa.nulls(reader.count_rows())}).select([])
    return feather.read_table(path, columns=present, memory_map=False)


def _batch_counts(table: Any) -> Optional[list[int]]:
    metadata = table.schema.metadata or {}
    raw = metadata.get(_COUNTS_KEY)
    return json.loads(raw) if raw else None


def _atomic_write(target: Path, write: Any) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        write(str(tmp))
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
