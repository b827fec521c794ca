"""The durable per-run store: every finished batch of every step, on disk.

Layout under the cache directory:

```
<cache_dir>/<pipeline name>/
    pipeline.yaml                       # the last run's configuration
    steps/<step name>-<signature>/      # one folder per step configuration
        000000.arrow, 000001.arrow ...  # the step's output for its input batch N
        _complete.json                  # written once the step has finished
```

A step's signature hashes its configuration and the signatures of the steps feeding it, so
changing a step invalidates that step and what is downstream of it, nothing else. Each batch
file is written to a temporary name and renamed, so a file either exists whole or not at
all; a killed run leaves only complete batches behind, and a new run skips them. Writes go
through one background thread, in submission order, so the event loop never waits on disk.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional

from potstill.typing import Row

_BATCH_SUFFIXES = (".arrow", ".json")
_COMPLETE_MARKER = "_complete.json"


class StepStore:
    """The stored output batches of one step configuration."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stored: Optional[set[int]] = None

    def stored_batches(self) -> list[int]:
        """Sequence numbers of the batches on disk, in order."""
        with self._lock:
            if self._stored is None:
                self._stored = set()
                if self.path.is_dir():
                    for entry in os.scandir(self.path):
                        stem, suffix = os.path.splitext(entry.name)
                        if suffix in _BATCH_SUFFIXES and stem.isdigit():
                            self._stored.add(int(stem))
            return sorted(self._stored)

    def has(self, seq: int) -> bool:
        """Whether batch `seq` is on disk."""
        self.stored_batches()
        assert self._stored is not None
        return seq in self._stored

    def write(self, seq: int, rows: list[Row]) -> None:
        """Writes batch `seq` atomically (Arrow; JSON when Arrow cannot hold the rows)."""
        import pyarrow as pa
        import pyarrow.feather as feather

        self.path.mkdir(parents=True, exist_ok=True)
        try:
            table = pa.Table.from_pylist(rows)
            _atomic_write(
                self.path / f"{seq:06d}.arrow",
                lambda tmp: feather.write_feather(table, tmp, compression="uncompressed"),
            )
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            text = json.dumps(rows, default=repr, ensure_ascii=False)
            _atomic_write(
                self.path / f"{seq:06d}.json", lambda tmp: Path(tmp).write_text(text, "utf-8")
            )
        with self._lock:
            if self._stored is not None:
                self._stored.add(seq)

    def read_table(self, seq: int) -> Any:
        """Batch `seq` as a `pyarrow.Table`."""
        import pyarrow as pa
        import pyarrow.feather as feather

        arrow = self.path / f"{seq:06d}.arrow"
        if arrow.exists():
            return feather.read_table(arrow, memory_map=False)
        rows = json.loads((self.path / f"{seq:06d}.json").read_text("utf-8"))
        return pa.Table.from_pylist(rows)

    def read(self, seq: int) -> list[Row]:
        """Batch `seq` as rows."""
        return self.read_table(seq).to_pylist()

    def read_all_tables(self) -> list[Any]:
        """Every stored batch as a table, in order."""
        return [self.read_table(seq) for seq in self.stored_batches()]

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

    def clear(self) -> None:
        """Deletes everything stored for this step configuration."""
        shutil.rmtree(self.path, ignore_errors=True)
        with self._lock:
            self._stored = None


class RunStore:
    """The store of one pipeline: step stores plus the background writer."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._writer: Optional[ThreadPoolExecutor] = None
        self._pending: list[Future[None]] = []

    def step_store(self, step_name: str, signature: str) -> StepStore:
        """The store for one step configuration."""
        return StepStore(self.root / "steps" / f"{step_name}-{signature}")

    def submit(self, store: StepStore, seq: int, rows: list[Row]) -> Future[None]:
        """Queues a batch write; writes happen in submission order."""
        return self._submit(store.write, seq, rows)

    def submit_completion(self, store: StepStore, batches: int, rows: int) -> Future[None]:
        """Queues the completion marker, after the step's batch writes."""
        return self._submit(store.mark_complete, batches, rows)

    def _submit(self, function: Any, *args: Any) -> Future[None]:
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="potstill-store")
        future = self._writer.submit(function, *args)
        self._pending = [f for f in self._pending if not f.done() or f.exception()]
        self._pending.append(future)
        return future

    def flush(self) -> None:
        """Waits for every queued write and re-raises the first write error."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def close(self) -> None:
        """Flushes and stops the writer thread."""
        try:
            self.flush()
        finally:
            if self._writer is not None:
                self._writer.shutdown(wait=True)
                self._writer = None

    def write_config(self, dump: dict[str, Any]) -> Path:
        """Writes the pipeline's configuration as `pipeline.yaml`."""
        from potstill.utils.serialization import write_file

        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / "pipeline.yaml"
        write_file(path, dump, "yaml")
        return path


def _atomic_write(target: Path, write: Any) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        write(str(tmp))
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
