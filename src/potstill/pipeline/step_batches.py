"""One step's stored batches: the output of one step configuration, on disk.

A step configuration's folder (`steps/<step name>-<signature>/` in the run's folder, see
`run_folder.py`) holds its batches as Arrow files, a manifest describing them, and the
journal of the LLM requests it answered:

```
000000.arrow                    # the step's output for its input batch 0
000001-000004.arrow             # batches 1 to 4, written together
manifest.jsonl                  # what each file holds, its checksum; completion; jobs
requests.jsonl                  # the journal: every answered LLM request
```

Each batch file is written under a temporary name and renamed, then described by one line of
the manifest: its SHA-256, and per batch its row count, an id, the id of the input it was
computed from and how many of its rows failed. Only what the manifest describes is read, and
a later line about a batch replaces an earlier one, so a batch recomputed later (a retry of
failed rows, a repaired file) is never read twice. A file whose checksum does not match, or a
manifest line that is damaged, is reported with a warning naming the file, and the batches it
held are recomputed. A killed run leaves only whole, described batches behind.

The manifest also records the provider batch jobs the step's LLM submitted
(`use_offline_batch_generation`, see `potstill.llms.batch_jobs`): a `job` line when a job is
submitted (its id and the ids of its requests) and another when its results have been read,
so a run killed while jobs are pending re-attaches to them.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, Optional

from potstill.errors import BatchWriteError, DamagedBatchError
from potstill.llms.cache import AnswerFile, forget_store, open_store
from potstill.typing import Row
from potstill.utils.append_log import AppendLog, read_lines, seal, unseal
from potstill.utils.rows import find_type_conflict, without_invalid_text

logger = logging.getLogger("potstill.pipeline")

_MANIFEST = "manifest.jsonl"
_JOURNAL = "requests.jsonl"
# What pyarrow raises on rows it cannot store (ArrowInvalid is a ValueError, ArrowTypeError a
# TypeError).
_ARROW_ERRORS = (ValueError, TypeError, UnicodeEncodeError, OverflowError, NotImplementedError)
_ONE_TYPE_ADVICE = (
    "A column must hold one type in every row: fix the step (or its input data) so it does, "
    "then run the pipeline again. Answered LLM requests are kept in the journal and are not "
    "sent again."
)


@dataclass(frozen=True)
class StoredBatch:
    """Where one stored batch lives and what it was computed from.

    Attributes:
        file: the file holding it.
        start: its first row within the file.
        rows: its row count.
        batch_id: an id of this computation of the batch (rows read downstream carry it).
        input_id: the id of the input it was computed from (`None` for generators).
        failed: how many of its rows failed (a failed batch is recomputed by the next run).
    """

    file: str
    start: int
    rows: int
    batch_id: str
    input_id: Optional[str]
    failed: int


@dataclass(frozen=True)
class BatchToWrite:
    """A finished batch on its way to disk."""

    seq: int
    rows: list[Row]
    batch_id: str
    input_id: Optional[str]
    failed: int


class StepBatches:
    """The stored output batches of one step configuration (and its request journal)."""

    def __init__(self, path: Path, step_name: str = "", single_schema: bool = False) -> None:
        """Opens (lazily) the batches stored in `path`.

        Args:
            path: the step configuration's folder.
            step_name: the step's name, for messages.
            single_schema: refuse a batch whose column types cannot be merged with the
                batches written before it (the steps whose batches end up in one dataset).
        """
        self.path = path
        self.journal_path = path / _JOURNAL  # the step's request journal (see `journal`)
        self.step_name = step_name or path.name.rsplit("-", 1)[0]
        self.single_schema = single_schema
        self._lock = threading.Lock()
        self._index: Optional[dict[int, StoredBatch]] = None
        self._sums: dict[str, str] = {}
        self._completion: Optional[dict[str, int]] = None
        self._jobs: dict[str, dict[str, Any]] = {}
        self._manifest: Optional[AppendLog] = None
        self._schema: Any = None
        self._cached: tuple[str, str, Any] = ("", "", None)  # name, checksum, table

    # -- index -------------------------------------------------------------------------

    def _ensure_index(self) -> dict[int, StoredBatch]:
        with self._lock:
            if self._index is None:
                self._index = {}
                self._load_manifest()
            return self._index

    def _load_manifest(self) -> None:
        assert self._index is not None
        path = self.path / _MANIFEST
        damaged = 0
        for line in read_lines(path):
            try:
                record = json.loads(unseal(line) or b"")
                if "complete" in record:
                    completion = record["complete"]
                    self._completion = {
                        "batches": int(completion["batches"]),
                        "rows": int(completion["rows"]),
                    }
                    continue
                if "job" in record:
                    self._jobs.setdefault(str(record["job"]["id"]), {}).update(record["job"])
                    continue
                name, digest = str(record["file"]), str(record["sha256"])
                entries = _entries(name, record["batches"])
            except (ValueError, KeyError, TypeError):  # damaged: costs only this line
                damaged += 1
                continue
            self._sums[name] = digest
            self._index.update(entries)
        if damaged:
            logger.warning(
                "%s: skipped %d damaged line(s); the batches they described are computed again.",
                path,
                damaged,
            )

    def stored_batches(self) -> list[int]:
        """Sequence numbers of the batches on disk, in order."""
        return sorted(self._ensure_index())

    def has(self, seq: int) -> bool:
        """Whether batch `seq` is on disk."""
        return seq in self._ensure_index()

    def lookup(self, seq: int) -> Optional[StoredBatch]:
        """What is stored for batch `seq`, if anything."""
        return self._ensure_index().get(seq)

    def failed_rows(self) -> tuple[int, int]:
        """Rows that failed in the stored batches, and the number of batches holding them."""
        index = self._ensure_index()
        seqs = self._current_seqs()
        failed = [index[seq].failed for seq in seqs if seq in index and index[seq].failed]
        return sum(failed), len(failed)

    # -- writing -----------------------------------------------------------------------

    def write_run(self, batches: list[BatchToWrite]) -> None:
        """Writes consecutive batches as one Arrow file and describes it in the manifest.

        Args:
            batches: consecutive batches.

        Raises:
            BatchWriteError: a batch that Arrow cannot hold (a column with mixed types),
                naming the step, the batch, the column, the rows and both types. The other
                batches are written all the same.
        """
        first, last = batches[0].seq, batches[-1].seq
        try:
            table = rows_to_table([row for batch in batches for row in batch.rows])
        except _ARROW_ERRORS:
            if len(batches) > 1:  # one odd batch should not cost the others
                errors = []
                for single in batches:
                    try:
                        self.write_run([single])
                    except BatchWriteError as error:
                        errors.append(error)
                if errors:
                    raise errors[0] from None
                return
            table = self._repaired_table(batches[0])
        if self.single_schema and table.num_columns:
            self._check_schema(table, batches)
        data = _arrow_bytes(table)
        digest = hashlib.sha256(memoryview(data)).hexdigest()
        name = f"{first:06d}.arrow" if first == last else f"{first:06d}-{last:06d}.arrow"
        self.path.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.path / name, data)
        record: dict[str, Any] = {
            "file": name,
            "sha256": digest,
            "batches": [
                [batch.seq, len(batch.rows), batch.batch_id, batch.input_id, batch.failed]
                for batch in batches
            ],
        }
        self._append(record)
        with self._lock:
            self._sums[name] = digest
            if self._index is not None:
                self._index.update(_entries(name, record["batches"]))

    def _repaired_table(self, batch: BatchToWrite) -> Any:
        """The table of a batch Arrow refused: invalid text repaired, values Arrow does not
        know stored as their `repr`, mixed types reported."""
        found: list[str] = []
        rows = [
            without_invalid_text(row, f"row {index}", found) for index, row in enumerate(batch.rows)
        ]
        if found:
            logger.warning(
                "Step %r, batch %d: text that is not valid UTF-8 (a lone surrogate) at %s; "
                "it is stored with U+FFFD (the replacement character) in its place.",
                self.step_name,
                batch.seq,
                list_places(found),
            )
        try:
            return rows_to_table(rows)
        except _ARROW_ERRORS as error:
            conflict = find_type_conflict(rows)
            arrow_error = f"{type(error).__name__}: {error}"
        if conflict is None:
            plain = json.loads(json.dumps(rows, default=repr))
            try:
                return rows_to_table(plain)
            except _ARROW_ERRORS:
                conflict = find_type_conflict(plain)
        raise BatchWriteError(
            f"Step {self.step_name!r} produced batch {batch.seq} that cannot be stored: "
            f"{conflict or arrow_error} (rows counted within the batch). {_ONE_TYPE_ADVICE}"
        )

    def _check_schema(self, table: Any, batches: list[BatchToWrite]) -> None:
        import pyarrow as pa

        if self._schema is None:
            self._schema = table.schema
            return
        try:
            self._schema = pa.unify_schemas(
                [self._schema, table.schema], promote_options="permissive"
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
            raise BatchWriteError(
                f"Step {self.step_name!r}: batch {batches[0].seq} has column types that "
                f"cannot be merged with the batches before it ({error}). {_ONE_TYPE_ADVICE}"
            ) from None

    def _append(self, record: dict[str, Any]) -> None:
        if self._manifest is None:
            self._manifest = AppendLog(self.path / _MANIFEST)
        self._manifest.append(seal(json.dumps(record).encode("ascii")))

    # -- reading -----------------------------------------------------------------------

    def read_table(self, seq: int) -> Any:
        """Batch `seq` as a `pyarrow.Table`.

        Raises:
            DamagedBatchError: when its file does not match its checksum; the batches of
                that file are then dropped from the index (so they are computed again).
        """
        entry = self._ensure_index()[seq]
        return self._read_file(entry.file).slice(entry.start, entry.rows)

    def read(self, seq: int) -> list[Row]:
        """Batch `seq` as rows."""
        return self.read_table(seq).to_pylist()

    def read_all_tables(self, columns: Optional[list[str]] = None) -> list[Any]:
        """The step's output, in batch order: one table per run of batches read together.

        Only the batches of the step's last complete run are read (each once, from the file
        that holds its latest version).

        Args:
            columns: keep only these columns (those a table has; every row still counts).
        """
        index = self._ensure_index()
        seqs = self._current_seqs()
        tables = []
        position = 0
        while position < len(seqs):
            first = index[seqs[position]]
            end, rows = position + 1, first.rows
            while end < len(seqs):
                entry = index[seqs[end]]
                if entry.file != first.file or entry.start != first.start + rows:
                    break
                rows += entry.rows
                end += 1
            table = self._read_file(first.file, cache=False).slice(first.start, rows)
            if columns is not None:
                table = table.select([name for name in columns if name in table.column_names])
            tables.append(table)
            position = end
        return tables

    def content_id(self) -> str:
        """An id of the step's output (what `read_all_tables` reads), from the checksums of
        the files holding it: the same stored rows give the same id, without reading them.

        Returns:
            16 hex characters.
        """
        index = self._ensure_index()
        parts = []
        for seq in self._current_seqs():
            entry = index.get(seq)
            if entry is not None:
                parts.append(f"{self._sums.get(entry.file)}:{entry.start}:{entry.rows}")
        return hashlib.blake2b("/".join(parts).encode(), digest_size=8).hexdigest()

    def _read_file(self, name: str, cache: bool = True) -> Any:
        import pyarrow as pa
        import pyarrow.feather as feather

        expected = self._sums.get(name)
        if self._cached[:2] == (name, expected):
            return self._cached[2]
        path = self.path / name
        try:
            data = path.read_bytes()
        except OSError as error:
            self._drop(name, f"it cannot be read ({error})")
        if hashlib.sha256(data).hexdigest() != expected:
            self._drop(name, "it does not match the checksum recorded when it was written")
        try:
            table = feather.read_table(pa.BufferReader(data))
        except Exception as error:  # matched its checksum but is still unreadable
            self._drop(name, f"it cannot be read as Arrow ({error})")
        if cache:
            self._cached = (name, expected, table)
        return table

    def _drop(self, name: str, reason: str) -> NoReturn:
        with self._lock:
            seqs = sorted(s for s, e in (self._index or {}).items() if e.file == name)
            for seq in seqs:
                del self._index[seq]  # type: ignore[union-attr]
        span = f"{seqs[0]}-{seqs[-1]}" if len(seqs) > 1 else str(seqs[0]) if seqs else "-"
        logger.warning(
            "Stored batch file %s is damaged: %s. Its batches (%s) of step %r are computed again.",
            self.path / name,
            reason,
            span,
            self.step_name,
        )
        raise DamagedBatchError(
            f"Stored batch file {self.path / name} is damaged: {reason}. Run the pipeline "
            "again: the batches it held are computed again."
        )

    # -- completion ----------------------------------------------------------------------

    def mark_complete(self, batches: int, rows: int) -> None:
        """Records that the step finished with `batches` batches and `rows` rows."""
        self.path.mkdir(parents=True, exist_ok=True)
        self._append({"complete": {"batches": batches, "rows": rows}})
        with self._lock:
            self._completion = {"batches": batches, "rows": rows}

    def _current_seqs(self) -> list[int]:
        """The batches of the step's last complete run (else every stored batch)."""
        completion = self.completion()
        return list(range(completion["batches"])) if completion else self.stored_batches()

    def completion(self) -> Optional[dict[str, int]]:
        """`{"batches", "rows"}` when the step finished in an earlier run, else `None`."""
        self._ensure_index()
        info = self._completion
        if info is not None and all(self.has(seq) for seq in range(info["batches"])):
            return dict(info)
        return None

    # -- provider batch jobs -------------------------------------------------------------

    def record_job(self, job: dict[str, Any]) -> None:
        """Records a provider batch job of the step's LLM: what is known of it (`id`, and
        `requests` when submitted or `ended` when its results were read) adds to what
        earlier lines recorded.

        Args:
            job: JSON data with the job's `id`.
        """
        self._ensure_index()
        self.path.mkdir(parents=True, exist_ok=True)
        self._append({"job": job})
        with self._lock:
            self._jobs.setdefault(str(job["id"]), {}).update(job)

    def jobs(self) -> dict[str, dict[str, Any]]:
        """The provider batch jobs recorded for this step configuration, by id."""
        self._ensure_index()
        with self._lock:
            return {job_id: dict(job) for job_id, job in self._jobs.items()}

    def journal(self) -> AnswerFile:
        """The step's request journal: every answered request of its LLM, kept for resume."""
        return open_store(self.journal_path, per_row=True)

    def close(self) -> None:
        """Closes the manifest and the journal, and frees the journal's memory."""
        if self._manifest is not None:
            self._manifest.close()
        forget_store(self.path / _JOURNAL)
        self._cached = ("", "", None)

    def clear(self) -> None:
        """Deletes everything stored for this step configuration."""
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)
        with self._lock:
            self._index = None
            self._sums = {}
            self._completion = None
            self._jobs = {}
            self._schema = None


def _entries(name: str, described: list[list[Any]]) -> dict[int, StoredBatch]:
    """The index entries of one manifest line: file `name` holds the `described` batches
    (`[seq, rows, batch id, input id, failed rows]` each), one after the other."""
    entries, start = {}, 0
    for seq, rows, batch_id, input_id, failed in described:
        entries[int(seq)] = StoredBatch(name, start, rows, batch_id, input_id, failed)
        start += rows
    return entries


def new_batch_id() -> str:
    """A fresh id for one computation of a batch, unique across processes and runs."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):x}"


# One random draw per process (a draw per batch costs up to a millisecond on some machines).
_ID_PREFIX = os.urandom(6).hex()
_ID_COUNTER = itertools.count()


def rows_to_table(rows: list[Row]) -> Any:
    """Rows as a `pyarrow.Table` with the union of their keys as columns.

    (`pyarrow.Table.from_pylist` takes the columns from the first row only and silently
    drops keys that appear later.)
    """
    import pyarrow as pa

    names = list(dict.fromkeys(key for row in rows for key in row))
    return pa.Table.from_pydict({name: [row.get(name) for row in rows] for name in names})


def _arrow_bytes(table: Any) -> Any:
    """The table as an uncompressed Arrow (Feather v2) file, in memory (a buffer)."""
    import pyarrow as pa
    import pyarrow.feather as feather

    sink = pa.BufferOutputStream()
    feather.write_feather(table, sink, compression="uncompressed")
    return sink.getvalue()


def _atomic_write(target: Path, data: Any) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(memoryview(data))
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def list_places(found: list[str]) -> str:
    """The first five places named in `found`, and how many more there are."""
    return ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
