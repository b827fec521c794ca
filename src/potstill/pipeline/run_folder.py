"""A pipeline's folder in the cache: what its runs stored, and the writer that stores it.

Layout under the cache directory:

```
<cache_dir>/<pipeline name>/
    run.lock                            # held by the run using the folder (see run_lock.py)
    pipeline.yaml                       # the last run's configuration
    steps/<step name>-<signature>/      # one folder per step configuration (step_batches.py)
```

A step's signature hashes its configuration, its code and the signatures of the steps feeding
it, so changing a step invalidates that step and what is downstream of it, nothing else.
Writes go through one background thread (see `batch_writer.py`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Optional

from potstill.pipeline.batch_writer import BatchWriter, MarkComplete, WriteBatch, WriteConfig
from potstill.pipeline.step_batches import BatchToWrite, StepBatches, list_places
from potstill.utils.canonical_json import canonical_sha256
from potstill.utils.rows import without_invalid_text

logger = logging.getLogger("potstill.pipeline")

_CONFIG_FILE = "pipeline.yaml"


class RunFolder:
    """One pipeline's folder: the stored batches of each step configuration, the pipeline's
    configuration, and the background writer that writes them.

    Attributes:
        root: the folder.
        on_error: called (from the writer thread) with the first write error, so the run
            can stop at once instead of when it ends.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.on_error: Optional[Callable[[BaseException], None]] = None
        self._writer: Optional[BatchWriter] = None
        self._steps: list[StepBatches] = []

    def step_batches(
        self, step_name: str, signature: str, single_schema: bool = False
    ) -> StepBatches:
        """The stored batches of one step configuration (see `StepBatches`)."""
        step = StepBatches(
            self.root / "steps" / f"{step_name}-{signature}", step_name, single_schema
        )
        self._steps.append(step)
        return step

    def submit(self, step: StepBatches, batch: BatchToWrite) -> None:
        """Queues a batch write."""
        self._get_writer().put(WriteBatch(step, batch))

    def submit_completion(self, step: StepBatches, batches: int, rows: int) -> None:
        """Queues the completion marker; it is written after the step's batches."""
        self._get_writer().put(MarkComplete(step, batches, rows))

    def submit_config(self, dump: dict[str, Any]) -> Path:
        """Queues writing the pipeline's configuration; returns the path it goes to."""
        self._get_writer().put(WriteConfig(self, dump))
        return self.root / _CONFIG_FILE

    def _get_writer(self) -> BatchWriter:
        if self._writer is None:
            self._writer = BatchWriter(self._report)
        return self._writer

    def _report(self, error: BaseException) -> None:
        if self.on_error is not None:
            self.on_error(error)

    def flush(self) -> None:
        """Waits for every queued write and re-raises the first write error."""
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Flushes, stops the writer thread, and closes every step's files (journals too)."""
        try:
            if self._writer is not None:
                try:
                    self._writer.flush()
                finally:
                    self._writer.stop()
                    self._writer = None
        finally:
            for step in self._steps:
                step.close()

    def write_config(self, dump: dict[str, Any]) -> Path:
        """Writes the pipeline's configuration as `pipeline.yaml` (unless it is unchanged)."""
        from potstill.utils.serialization import write_file

        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / _CONFIG_FILE
        digest = canonical_sha256(dump).hexdigest()
        stamp = self.root / ".pipeline.yaml.sha256"
        if path.exists() and stamp.exists() and stamp.read_text() == digest:
            return path  # a big inline dataset makes YAML slow to write: skip when unchanged
        try:
            write_file(path, dump, "yaml")
        except UnicodeEncodeError:
            found: list[str] = []
            dump = without_invalid_text(dump, "", found)
            logger.warning(
                "pipeline.yaml: text that is not valid UTF-8 (a lone surrogate) at %s is "
                "written with U+FFFD (the replacement character) in its place.",
                list_places(found),
            )
            write_file(path, dump, "yaml")
        stamp.write_text(digest)
        return path
