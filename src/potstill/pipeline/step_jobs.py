"""The provider batch jobs of one step during a run (`use_offline_batch_generation`).

The LLM submits, checks and reads its jobs (see `potstill.llms.batch_jobs`); the step gives
it the `JobStore` it records them in: the step's manifest (`StepBatches.record_job`), so a
run killed while jobs are pending re-attaches to them, and the progress display, where the
state of the step's jobs shows beside its bar.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import TYPE_CHECKING, Optional

from potstill.llms.batch_jobs import JobState, OpenJobs

if TYPE_CHECKING:
    from potstill.pipeline.progress import Progress
    from potstill.pipeline.step_batches import StepBatches


class StepJobs:
    """The `JobStore` of one step: its jobs recorded in its store and shown in the display.

    Args:
        step: the step's name.
        batches: the step's store.
        progress: the run's progress display.
    """

    def __init__(self, step: str, batches: StepBatches, progress: Progress) -> None:
        self.step = step
        self.batches = batches
        self.progress = progress
        self._states: dict[str, JobState] = {}
        self._open: Optional[OpenJobs] = None
        self._lock = threading.Lock()

    def covering(self, custom_ids: set[str]) -> dict[str, set[str]]:
        """The recorded jobs whose results were not read yet that hold some of
        `custom_ids`: job id -> the ones it holds."""
        return self._open_jobs().covering(custom_ids)

    def submitted(self, job_id: str, custom_ids: list[str]) -> None:
        """Records a new job before it is first checked."""
        self.batches.record_job({"id": job_id, "requests": custom_ids})
        self._open_jobs().add(job_id, custom_ids)

    def ended(self, job_id: str, status: str) -> None:
        """Records that a job's results were read (a later run does not re-attach to it)."""
        self.batches.record_job({"id": job_id, "ended": status})
        self._open_jobs().remove(job_id)

    def _open_jobs(self) -> OpenJobs:
        """The recorded jobs whose results were not read yet (read from the store once)."""
        with self._lock:
            if self._open is None:
                self._open = OpenJobs()
                for job_id, job in self.batches.jobs().items():
                    if "ended" not in job:
                        self._open.add(job_id, job.get("requests") or [])
            return self._open

    def show(self, job_id: str, state: JobState) -> None:
        """Shows the state of the step's jobs beside its progress bar."""
        with self._lock:
            self._states[job_id] = state
            text = describe_jobs(list(self._states.values()))
        self.progress.show_jobs(self.step, text)


def describe_jobs(states: list[JobState]) -> str:
    """One line about a step's jobs, e.g. `jobs: 2 in_progress, 1 completed (25/30 requests)`.

    Args:
        states: the last state of each job.

    Returns:
        The line.
    """
    counts = Counter(state.status for state in states)
    statuses = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
    total = sum(state.total for state in states)
    done = sum(state.done for state in states)
    requests = f" ({done}/{total} requests)" if total else ""
    return f"{'job' if len(states) == 1 else 'jobs'}: {statuses}{requests}"
