"""Per-step progress display: rows done / total, rows per second and the time left.

Rows count when a step passes a batch on; while a batch runs, the rows of the inputs its LLM
has finished show too (see `potstill.utils.batch_progress`), and the display ends at exactly
the rows each step produced. A bar's total is what `expected_rows` can tell before the run.
A step whose LLM sends provider batch jobs shows their state beside its bar.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from potstill.steps.base import GeneratorStep
from potstill.steps.tasks.base import _Task
from potstill.utils.logging import console

if TYPE_CHECKING:
    from potstill.pipeline.dag import DAG


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
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        self._progress = RichProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[jobs]}"),
            console=console(),
            transient=False,
        )
        for name, total in steps.items():
            self._tasks[name] = self._progress.add_task(name, total=total, rate="", jobs="")
        self._progress.start()

    def advance(self, step: str, rows: int) -> None:
        """Counts `rows` more rows done by `step` (negative: fewer; thread-safe)."""
        progress = self._progress  # once: `stop` may run meanwhile on another thread
        if progress is None or not rows:
            return
        task_id = self._tasks[step]
        progress.advance(task_id, rows)
        task = progress.tasks[task_id]
        elapsed = task.elapsed or 0.0
        if elapsed > 0:
            progress.update(task_id, rate=f"{task.completed / elapsed:,.1f} rows/s")

    def show_jobs(self, step: str, text: str) -> None:
        """Shows `text` about `step`'s provider batch jobs beside its bar (thread-safe)."""
        progress = self._progress
        if progress is not None:
            progress.update(self._tasks[step], jobs=text)

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


def expected_rows(dag: DAG) -> dict[str, Optional[int]]:
    """The rows each step will produce, where they can be known before the run: a
    generator's total, and what a step fed by one such step makes of it.

    Args:
        dag: the pipeline's steps.

    Returns:
        Step name -> expected rows (`None` when unknown).
    """
    expected: dict[str, Optional[int]] = {}
    for name in dag.topological_order():
        step = dag.steps[name]
        predecessors = dag.predecessors(name)
        if isinstance(step, GeneratorStep):
            expected[name] = step.total_rows()
        elif (
            len(predecessors) == 1
            and expected[predecessors[0]] is not None
            and not dag.receives_routed_batches(name)
        ):
            factor = step.expected_expansion() if isinstance(step, _Task) else 1
            expected[name] = expected[predecessors[0]] * factor  # type: ignore[operator]
        else:
            expected[name] = None
    return expected
