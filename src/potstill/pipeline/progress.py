"""Per-step progress display: rows done / total and rows per second."""

from __future__ import annotations

from typing import Any, Optional

from potstill.utils.logging import console


class Progress:
    """A rich progress display with one bar per step (or nothing, when disabled)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}

    def start(self, steps: dict[str, Optional[int]]) -> None:
        """Shows one bar per step.

        Args:
            steps: step name -> expected rows (`None` when unknown).
        """
        if not self.enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.progress import Progress as RichProgress

        self._progress = RichProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=console(),
            transient=False,
        )
        for name, total in steps.items():
            self._tasks[name] = self._progress.add_task(name, total=total, rate="")
        self._progress.start()

    def advance(self, step: str, rows: int) -> None:
        """Counts `rows` more rows done by `step`."""
        if self._progress is None:
            return
        task_id = self._tasks[step]
        self._progress.advance(task_id, rows)
        task = self._progress.tasks[task_id]
        elapsed = task.elapsed or 0.0
        if elapsed > 0:
            self._progress.update(task_id, rate=f"{task.completed / elapsed:,.1f} rows/s")

    def finish(self, step: str) -> None:
        """Marks `step` as done (its total becomes what it produced)."""
        if self._progress is None:
            return
        task_id = self._tasks[step]
        completed = self._progress.tasks[task_id].completed
        self._progress.update(task_id, total=completed)

    def stop(self) -> None:
        """Removes the live display, leaving the final state printed."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
