"""Provider batch jobs: with `use_offline_batch_generation=True` an LLM sends the requests of a
batch as jobs of its provider's batch API (OpenAI's Batch API, Anthropic's Message Batches),
which answer within hours at a lower price, instead of one request at a time.

How a batch runs as jobs (`run_as_jobs`):

1. every request gets the key an online request gets (`potstill.llms.cache`), and requests
   answered before (the pipeline step's journal, the response cache) are not sent: a rerun
   with `use_offline_batch_generation=False` sends online only what no job answered, and
   the other way around;
2. a request that a job submitted earlier covers, when that job's results were not read yet,
   waits for that job (a killed run re-attaches to its jobs and never submits them again);
   the others are submitted as new jobs, split at the provider's size limits, and each job's
   id is recorded at once in the `JobStore` (the step's store during a pipeline run, see
   `potstill.pipeline.step_jobs`; memory outside one);
3. each job is checked every `offline_batch_generation_block_until_done` seconds until it
   ends; its answers are parsed by the provider's response parser, kept in the journal and
   returned in input order. A request the job failed, or never ran because the job expired,
   was cancelled or failed, gets `None` generations with the error; the job is recorded as
   read, so the next run sends those requests again (in a new job, or online).

A provider supports batch jobs with a `JobAdapter` in its own module, built from the pure
request builder and response parser its online requests use, and `OfflineBatchGeneration`
mixed in before its base class.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Optional, Protocol, TypeVar

from pydantic import BaseModel, Field, PositiveFloat

from potstill.llms.cache import KnownAnswers, known_answers
from potstill.llms.failures import all_failed, describe_error, fit_to_count
from potstill.llms.requests import positive_int
from potstill.llms.retry import backoff_delay, classify
from potstill.llms.typing import Generations
from potstill.mixins.runtime_parameters import RuntimeParameter
from potstill.typing import ChatType
from potstill.utils.batch_progress import BatchProgress, current_batch_progress
from potstill.utils.fields import ExecutionOnly

if TYPE_CHECKING:
    from potstill.llms.async_llm import AsyncLLM

DEFAULT_POLL_INTERVAL_S = 30.0
"""Seconds between two checks of a pending job when `offline_batch_generation_block_until_done`
is not set."""

_T = TypeVar("_T")


@dataclass(frozen=True)
class JobRequest:
    """One request of a job.

    Attributes:
        custom_id: its id within the job: the request's key and its row (`<key>-<row>`),
            the same in every run.
        input: the conversation.
        num_generations: the generations the request asks for (the API's `n`; 1 for a
            provider without one).
    """

    custom_id: str
    input: ChatType
    num_generations: int


@dataclass(frozen=True)
class JobState:
    """What one look at a job tells.

    Attributes:
        status: the provider's word for it (`in_progress`, `completed`, `expired`...).
        ended: whether it has ended (its results can be read).
        done: requests it has processed, where the provider says.
        total: requests it holds, where the provider says.
        problem: why its requests without an answer have none (expired, cancelled,
            failed), else `None`.
        job: the provider's job object (for reading its results).
    """

    status: str
    ended: bool
    done: int = 0
    total: int = 0
    problem: Optional[str] = None
    job: Any = None

    def describe(self) -> str:
        """`status` with its count of processed requests, e.g. `in_progress 3/10`."""
        return f"{self.status} {self.done}/{self.total}" if self.total else self.status


class JobAdapter(ABC):
    """One provider's batch API: what a request looks like in a job, how a job is submitted,
    checked and read. Each provider module that supports batch jobs has one.

    Attributes:
        llm: the loaded LLM whose client sends the calls.
    """

    max_requests: ClassVar[int]
    """The most requests the provider takes in one job."""
    max_bytes: ClassVar[int]
    """The largest job the provider takes, in bytes of JSON."""

    def __init__(self, llm: Any) -> None:
        self.llm = llm

    @abstractmethod
    def encode(self, request: JobRequest, kwargs: dict[str, Any]) -> dict[str, Any]:
        """One request as the job's input holds it.

        Args:
            request: the request.
            kwargs: every generation kwarg, defaults included (as `agenerate` has them).

        Returns:
            The JSON object (it carries `request.custom_id`).
        """

    @abstractmethod
    async def submit(self, items: list[dict[str, Any]]) -> str:
        """Submits a job of encoded requests.

        Returns:
            The job's id.
        """

    @abstractmethod
    async def check(self, job_id: str) -> JobState:
        """Looks at a job.

        Args:
            job_id: the job's id.

        Returns:
            Its state.
        """

    @abstractmethod
    async def results(self, state: JobState, kwargs: dict[str, Any]) -> dict[str, Generations]:
        """The answers of an ended job, failed requests included (with their error).

        Args:
            state: the job's last state (`ended`).
            kwargs: every generation kwarg, as for `encode`.

        Returns:
            Custom id -> generations.
        """

    async def retrying(self, call: Callable[[], Awaitable[_T]]) -> _T:
        """Makes one API call, retrying transient failures like online requests are retried
        (see `with_retries`)."""
        return await with_retries(self.llm, call)


class JobStore(Protocol):
    """Where a batch's jobs are recorded, so that a later run re-attaches to them, and where
    their state is shown."""

    def covering(self, custom_ids: set[str]) -> dict[str, set[str]]:
        """The jobs submitted earlier, whose results were not read yet, that hold some of
        `custom_ids`: job id -> the ones it holds."""

    def submitted(self, job_id: str, custom_ids: list[str]) -> None:
        """Records a new job (before it is first checked)."""

    def ended(self, job_id: str, status: str) -> None:
        """Records that a job's results were read (its answers are in the journal)."""

    def show(self, job_id: str, state: JobState) -> None:
        """Shows a job's state (in a pipeline run, beside its step's progress bar)."""


class OpenJobs:
    """Which job whose results were not read yet holds each request (by custom id), for
    `JobStore.covering` (thread-safe)."""

    def __init__(self) -> None:
        self._holder: dict[str, str] = {}  # custom id -> job id
        self._held: dict[str, list[str]] = {}  # job id -> custom ids
        self._lock = threading.Lock()

    def add(self, job_id: str, custom_ids: list[str]) -> None:
        """Adds a job and the requests it holds."""
        with self._lock:
            self._held[job_id] = list(custom_ids)
            self._holder.update(dict.fromkeys(custom_ids, job_id))

    def remove(self, job_id: str) -> None:
        """Removes a job whose results were read."""
        with self._lock:
            for custom_id in self._held.pop(job_id, ()):
                if self._holder.get(custom_id) == job_id:
                    del self._holder[custom_id]

    def covering(self, custom_ids: set[str]) -> dict[str, set[str]]:
        """See `JobStore.covering`."""
        found: dict[str, set[str]] = {}
        with self._lock:
            for custom_id in custom_ids:
                job_id = self._holder.get(custom_id)
                if job_id is not None:
                    found.setdefault(job_id, set()).add(custom_id)
        return found


class MemoryJobStore(OpenJobs):
    """The `JobStore` outside a pipeline run: jobs are known for the call only."""

    def submitted(self, job_id: str, custom_ids: list[str]) -> None:
        self.add(job_id, custom_ids)

    def ended(self, job_id: str, status: str) -> None:
        self.remove(job_id)

    def show(self, job_id: str, state: JobState) -> None:
        pass


_job_store: contextvars.ContextVar[Optional[JobStore]] = contextvars.ContextVar(
    "potstill_job_store", default=None
)


def use_job_store(store: Optional[JobStore]) -> contextvars.Token[Optional[JobStore]]:
    """Makes `store` where the batches of the current context record their jobs (the engine
    does this per step)."""
    return _job_store.set(store)


class OfflineBatchGeneration(BaseModel):
    """Lets a hosted LLM send its batches' requests as provider batch jobs.

    Mix it in before the LLM's base class and override `job_adapter`.

    Attributes:
        use_offline_batch_generation: send each batch's requests as jobs of the provider's
            batch API and wait for their answers, instead of sending one request at a time.
        offline_batch_generation_block_until_done: seconds between two checks of a pending
            job (30 when not set).
    """

    use_offline_batch_generation: ExecutionOnly[RuntimeParameter[bool]] = Field(
        default=False,
        description="Send each batch's requests as jobs of the provider's batch API (cheaper, "
        "answered within 24 hours) and wait for their answers, instead of one request at a "
        "time. A killed run re-attaches to its pending jobs.",
    )
    offline_batch_generation_block_until_done: ExecutionOnly[
        Optional[RuntimeParameter[PositiveFloat]]
    ] = Field(
        default=None,
        description="Seconds between two checks of a pending batch job (default "
        f"{DEFAULT_POLL_INTERVAL_S:g}).",
    )

    def job_adapter(self) -> JobAdapter:
        """The provider's batch API (each provider that mixes this in returns its own)."""
        raise NotImplementedError(f"{type(self).__name__} has no batch API adapter.")

    async def _arun_batch(
        self, inputs: list[ChatType], num_generations: Any, row_offset: int, kwargs: dict
    ) -> list[Generations]:
        if not self.use_offline_batch_generation:
            return await super()._arun_batch(inputs, num_generations, row_offset, kwargs)  # type: ignore[misc]
        return await run_as_jobs(self, inputs, num_generations, row_offset, kwargs)  # type: ignore[arg-type]


def uses_batch_jobs(llm: Any) -> bool:
    """Whether `llm` sends its batches as provider batch jobs."""
    return bool(getattr(llm, "use_offline_batch_generation", False))


async def run_as_jobs(
    llm: AsyncLLM, inputs: list[ChatType], num_generations: Any, row_offset: int, kwargs: dict
) -> list[Generations]:
    """Generates for a batch through provider batch jobs (see the module docstring).

    Args:
        llm: the loaded LLM (an `OfflineBatchGeneration` one).
        inputs: the conversations to continue.
        num_generations: generations per input.
        row_offset: the row of the first input in the dataset.
        kwargs: the generation kwargs.

    Returns:
        One `Generations` per input, in input order.
    """
    count = positive_int("num_generations", num_generations)
    native = llm.generation_spec().native_num_generations
    known = known_answers(llm) or KnownAnswers((), llm.cache_identity())
    batch = _JobBatch(llm, known, kwargs, 1.0 if native else 1.0 / count)
    per_input: list[list[str]] = []
    for index, conversation in enumerate(inputs):
        row = row_offset + index
        generations = [None] if native else range(count)
        per_input.append(
            [
                batch.add(conversation, count if native else None, generation, row)
                for generation in generations
            ]
        )
    await batch.answer_pending()
    outputs = []
    for index, custom_ids in enumerate(per_input):
        row = row_offset + index
        if native:
            outputs.append(fit_to_count(llm, batch.answers[custom_ids[0]], count, row))
        else:
            parts = [fit_to_count(llm, batch.answers[c], 1, row) for c in custom_ids]
            outputs.append(Generations.concat(parts))
    return outputs


class _JobBatch:
    """The requests of one batch and their answers, known before or brought by jobs."""

    def __init__(self, llm: AsyncLLM, known: KnownAnswers, kwargs: dict, share: float) -> None:
        self.llm = llm
        self.known = known
        self.kwargs = kwargs
        self.share = share
        self.progress: Optional[BatchProgress] = current_batch_progress()
        self.answers: dict[str, Generations] = {}
        self.pending: dict[str, JobRequest] = {}
        self.places: dict[str, tuple[str, int]] = {}  # custom id -> (request key, row)

    def add(self, input: ChatType, num_generations: Optional[int], index: Any, row: int) -> str:
        """Adds one request: answered from before, or pending. Returns its custom id."""
        key = self.known.key(input, self.kwargs, num_generations, index)
        custom_id = f"{key}-{row}"
        self.places[custom_id] = (key, row)
        recalled = self.known.recall(key, row)
        if recalled is not None:
            self.llm._usage.record_cached()
            self._answered(custom_id, recalled)
        else:
            self.pending[custom_id] = JobRequest(custom_id, input, num_generations or 1)
        return custom_id

    def _answered(self, custom_id: str, generations: Generations) -> None:
        self.answers[custom_id] = generations
        if self.progress is not None:
            self.progress.add(self.share)

    async def answer_pending(self) -> None:
        """Answers the pending requests through the jobs that cover them and new ones."""
        if not self.pending:
            return
        llm = self.llm
        store = _job_store.get() or MemoryJobStore()
        adapter: JobAdapter = llm.job_adapter()  # type: ignore[attr-defined]
        wanted = set(self.pending)
        follows = []
        for job_id, mine in store.covering(wanted).items():
            llm.logger.info(
                "Re-attaching to batch job %s (%d request(s) of this batch).", job_id, len(mine)
            )
            follows.append(self._follow(adapter, store, job_id, mine))
            wanted -= mine
        kwargs = request_kwargs(llm, self.kwargs)
        fresh = [self.pending[custom_id] for custom_id in self.pending if custom_id in wanted]
        for items in _chunks([adapter.encode(request, kwargs) for request in fresh], adapter):
            custom_ids = [item["custom_id"] for item in items]
            try:
                job_id = await adapter.submit(items)
            except Exception as error:
                self._fail(custom_ids, f"submitting the batch job failed: {describe_error(error)}")
                continue
            store.submitted(job_id, custom_ids)
            llm.logger.info(
                "Submitted batch job %s (%d request(s)) to %s.",
                job_id,
                len(custom_ids),
                llm.describe_endpoint() or type(llm).__name__,
            )
            follows.append(self._follow(adapter, store, job_id, set(custom_ids)))
        await asyncio.gather(*follows)

    async def _follow(
        self, adapter: JobAdapter, store: JobStore, job_id: str, custom_ids: set[str]
    ) -> None:
        """Checks a job until it ends, then takes its answers for `custom_ids`."""
        llm = self.llm
        interval = llm.offline_batch_generation_block_until_done or DEFAULT_POLL_INTERVAL_S  # type: ignore[attr-defined]
        status = None
        while True:
            try:
                state = await adapter.check(job_id)
            except Exception as error:
                if classify(error).status == 404:  # gone: the next run submits anew
                    store.ended(job_id, "not found")
                    advice = "it is not at the provider (deleted, or another account's)"
                else:
                    advice = "run again to re-attach to it"
                self._fail(
                    custom_ids,
                    f"checking batch job {job_id} failed: {describe_error(error)}; {advice}",
                )
                return
            store.show(job_id, state)
            if state.status != status:
                status = state.status
                llm.logger.info("Batch job %s: %s.", job_id, state.describe())
            if state.ended:
                break
            await asyncio.sleep(interval)
        try:
            answers = await adapter.results(state, request_kwargs(llm, self.kwargs))
        except Exception as error:
            self._fail(
                custom_ids,
                f"reading the results of batch job {job_id} failed: {describe_error(error)}; "
                "run again to re-attach to it",
            )
            return
        self._take(job_id, state, answers, custom_ids)
        store.ended(job_id, state.status)

    def _take(
        self, job_id: str, state: JobState, answers: dict[str, Generations], custom_ids: set[str]
    ) -> None:
        """Keeps a job's answers for `custom_ids` (in the journal too) and reports the rest."""
        missing = state.problem or f"batch job {job_id} ({state.status}) has no answer for it"
        failed: list[str] = []
        for custom_id in custom_ids:
            request = self.pending[custom_id]
            generations = answers.get(custom_id)
            if generations is None or all_failed(generations):
                error = _first_error(generations) or missing
                generations = Generations.failed(request.num_generations, error)
                self.llm._usage.record_failure(error)
                failed.append(error)
            else:
                self.llm._usage.record_success(generations)
                key, row = self.places[custom_id]
                self.known.remember(key, row, generations)
            self._answered(custom_id, generations)
        if failed:
            self.llm.logger.warning(
                "Batch job %s (%s): %d of %d request(s) have no answer (e.g. %s); their rows "
                "are None, with the error in potstill_metadata. Run again to send them again "
                "(in a new job, or online with use_offline_batch_generation=False); the "
                "answers are kept.",
                job_id,
                state.status,
                len(failed),
                len(custom_ids),
                failed[0],
            )

    def _fail(self, custom_ids: Any, error: str) -> None:
        self.llm.logger.warning("%s (%d request(s)).", error, len(custom_ids))
        for custom_id in custom_ids:
            self.llm._usage.record_failure(error)
            failed = Generations.failed(self.pending[custom_id].num_generations, error)
            self._answered(custom_id, failed)


def _first_error(generations: Optional[Generations]) -> Optional[str]:
    if generations is None:
        return None
    return next((error for error in generations.errors if error), None)


def _chunks(items: list[dict[str, Any]], adapter: JobAdapter) -> Iterator[list[dict[str, Any]]]:
    """`items` cut into jobs the provider takes (`max_requests`, `max_bytes`)."""
    chunk: list[dict[str, Any]] = []
    size = 0
    for item in items:
        item_size = len(json.dumps(item)) + 1
        if chunk and (len(chunk) >= adapter.max_requests or size + item_size > adapter.max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += item_size
    if chunk:
        yield chunk


def request_kwargs(llm: AsyncLLM, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The generation kwargs of a request as `agenerate` receives them: coerced to their
    types, with the defaults of those not given.

    Args:
        llm: the LLM.
        kwargs: the generation kwargs given.

    Returns:
        Every generation kwarg.
    """
    spec = llm.generation_spec()
    given = spec.validate(kwargs, where=f"LLM {type(llm).__name__}")
    defaults = {
        name: parameter.default
        for name, parameter in spec.parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }
    return {**defaults, **given}


async def with_retries(llm: AsyncLLM, call: Callable[[], Awaitable[_T]]) -> _T:
    """Makes one batch-API call, retrying what online requests retry (429, 5xx, timeouts,
    connection errors; see `potstill.llms.retry`) within the LLM's `max_retries` and
    `max_retry_time` (a refused connection within `refused_connection_retry_time`).

    Args:
        llm: the LLM whose settings apply.
        call: makes the call.

    Returns:
        What the call returns.

    Raises:
        Exception: what the last attempt raised.
    """
    started = time.monotonic()
    deadline = started + (llm.max_retry_time or 0)
    refused_deadline = min(deadline, started + (llm.refused_connection_retry_time or 0))
    attempt = 0
    while True:
        try:
            return await call()
        except Exception as error:
            decision = classify(error)
            if not decision.retry or attempt >= (llm.max_retries or 0):
                raise
            delay = (
                decision.wait
                if decision.wait is not None
                else backoff_delay(attempt, base=llm.retry_backoff or 0.5)
            )
            if time.monotonic() + delay > (refused_deadline if decision.refused else deadline):
                raise
            await asyncio.sleep(delay)
            attempt += 1
