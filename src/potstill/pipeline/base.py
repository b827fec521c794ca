"""`Pipeline`: the context manager that collects steps and runs them."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Optional, Union

from potstill import __version__
from potstill.distiset import Distiset, stored_table
from potstill.errors import DamagedBatchError, PotstillUserError
from potstill.pipeline.context import enter_pipeline, exit_pipeline
from potstill.pipeline.dag import DAG
from potstill.pipeline.engine import Engine
from potstill.pipeline.failures import FailedRows, count_failed_rows
from potstill.pipeline.progress import Progress, expected_rows
from potstill.pipeline.ray_support import RaySupport
from potstill.pipeline.routing_batch_function import RoutingBatchFunction
from potstill.pipeline.run_dump import run_dump
from potstill.pipeline.run_folder import RunFolder
from potstill.pipeline.run_lock import RunLock
from potstill.pipeline.signature import step_signatures
from potstill.pipeline.spend import RunSpending, checked_max_cost, raise_if_spent, stop_when_spent
from potstill.pipeline.step_batches import StepBatches
from potstill.pipeline.validation import apply_params, validate
from potstill.steps.base import GeneratorStep, _Step
from potstill.steps.tasks.base import _Task
from potstill.utils.datasets_progress import quiet_datasets_progress, steps_use_datasets
from potstill.utils.logging import setup_logging
from potstill.utils.portal import run_sync
from potstill.utils.serialization import (
    TYPE_INFO_KEY,
    _Serializable,
    defined_where,
    importable_module_advice,
    refuse_remote_code,
    resolve_class,
)

logger = logging.getLogger("potstill.pipeline")

Params = dict[str, dict[str, Any]]


def default_cache_dir() -> Path:
    """`$POTSTILL_CACHE_DIR`, or `~/.cache/potstill/pipelines`."""
    env = os.environ.get("POTSTILL_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "potstill" / "pipelines"


class Pipeline(RaySupport, _Serializable):
    """A set of connected steps that runs as one job.

    ```python
    with Pipeline(name="my-pipeline") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "..."}])
        generate = TextGeneration(llm=OpenAILLM(model="gpt-4"))
        load >> generate

    distiset = pipeline.run(params={generate.name: {"llm": {"generation_kwargs": {...}}}})
    ```

    Args:
        name: names the pipeline and its folder in the cache.
        description: free text, kept in dumps.
        cache_dir: where runs store their batches (default `$POTSTILL_CACHE_DIR` or
            `~/.cache/potstill/pipelines`).
        enable_metadata: keep the `potstill_metadata` column (raw outputs, usage, errors)
            in the returned datasets.
        show_progress: show a per-step progress display while running.
        use_response_cache: reuse answers cached on disk for identical requests of every LLM
            in the pipeline, across runs and pipelines (see `LLM.use_response_cache`).
        max_cost: the most dollars a run's LLM requests may cost (see `run`, `last_run_cost`).
    """

    def __init__(
        self,
        name: Optional[str] = None,
        description: Optional[str] = None,
        cache_dir: Optional[Union[str, os.PathLike[str]]] = None,
        enable_metadata: bool = True,
        show_progress: bool = True,
        use_response_cache: bool = False,
        max_cost: Optional[float] = None,
    ) -> None:
        self.name = name or "pipeline"
        self.description = description
        self.enable_metadata = enable_metadata
        self.show_progress = show_progress
        self.use_response_cache = use_response_cache
        self.max_cost, self.last_run_cost = checked_max_cost(max_cost), None
        self.dag = DAG()
        self._cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._tokens: list[contextvars.Token[Any]] = []

    # -- building ------------------------------------------------------------------------

    def __enter__(self) -> Pipeline:
        self._tokens.append(enter_pipeline(self))
        return self

    def __exit__(self, *exc_info: Any) -> None:
        exit_pipeline(self._tokens.pop())

    def _add_step(self, step: _Step) -> None:
        self.dag.add_step(step)

    def _add_edge(self, source: _Step, target: _Step) -> None:
        if target.pipeline is not self:
            raise PotstillUserError(
                f"Cannot connect {source.name!r} >> {target.name!r}: they belong to different "
                "pipelines. Create both inside the same `with Pipeline(...)` block."
            )
        self.dag.add_edge(source.name, target.name)  # type: ignore[arg-type]

    @property
    def cache_dir(self) -> Path:
        """This pipeline's folder in the cache."""
        return self._cache_dir / self.name

    # -- running -------------------------------------------------------------------------

    def run(
        self,
        params: Optional[Params] = None,
        use_cache: bool = True,
        *,
        parameters: Optional[Params] = None,
        show_progress: Optional[bool] = None,
        max_cost: Optional[float] = None,
    ) -> Distiset:
        """Runs the pipeline and returns its datasets.

        Runtime parameters are applied before anything else; then the whole pipeline is
        validated, before any step is loaded. `generation_kwargs` given here are merged over
        the ones given to the LLM's constructor.

        Args:
            params: step name -> runtime parameters, nested for the LLM, e.g.
                `{"text_generation_0": {"llm": {"generation_kwargs": {"temperature": 0.3}}}}`.
            use_cache: reuse batches stored by earlier runs of the same configuration (a
                killed run resumes, rows that failed are retried); `False` discards them and
                starts over.
            parameters: distilabel's name for `params`.
            show_progress: override the pipeline's `show_progress`.
            max_cost: override the pipeline's `max_cost`: past it the run stops gracefully
                (`BudgetExceededError`) and a run with more resumes (`potstill.llms.budget`).

        Returns:
            The `Distiset`: leaf step name (or `"default"`) -> `DatasetDict({"train": ...})`.
            Its `failed_rows` counts the rows that failed, per step and in total; when some
            did, one warning at the end of the run says so.
        """
        if self._runs_on_ray_by_default():
            return self.ray().run(
                params=params,
                use_cache=use_cache,
                parameters=parameters,
                show_progress=show_progress,
            )
        try:
            return run_sync(
                self.arun(
                    params=params,
                    use_cache=use_cache,
                    parameters=parameters,
                    show_progress=show_progress,
                    max_cost=max_cost,
                )
            )
        except KeyboardInterrupt:
            logger.warning(
                "Pipeline %r interrupted. Every finished batch and request is saved; run it "
                "again (with use_cache=True, the default) to resume where it stopped.",
                self.name,
            )
            raise

    async def arun(
        self,
        params: Optional[Params] = None,
        use_cache: bool = True,
        *,
        parameters: Optional[Params] = None,
        show_progress: Optional[bool] = None,
        max_cost: Optional[float] = None,
        _max_generator_batches: Optional[int] = None,
        _cache_dir: Optional[Path] = None,
    ) -> Distiset:
        """`run` for async code: `distiset = await pipeline.arun(...)`."""
        params = _params(params, parameters)
        setup_logging()
        apply_params(self.dag, params)
        validate(self.dag)
        root = _cache_dir if _cache_dir is not None else self.cache_dir
        lock = RunLock(root, self.name)
        lock.acquire()  # a second run of this pipeline at the same time is refused
        try:
            with RunSpending(self, max_cost):  # the run's spending limits; what it spent
                return await self._run_locked(
                    root, use_cache, show_progress, _max_generator_batches
                )
        finally:
            lock.release()

    async def _run_locked(
        self,
        root: Path,
        use_cache: bool,
        show_progress: Optional[bool],
        max_generator_batches: Optional[int],
    ) -> Distiset:
        folder = RunFolder(root)
        step_dumps = {name: run_dump(step) for name, step in self.dag.steps.items()}
        signatures = step_signatures(self.dag, step_dumps)
        leaves = set(self.dag.leaves)
        steps = {
            name: folder.step_batches(name, signature, single_schema=name in leaves)
            for name, signature in signatures.items()
        }
        if not use_cache:
            for stored in steps.values():
                stored.clear()
        leaf_steps = {name: steps[name] for name in self.dag.leaves}
        tables: Optional[dict[str, Any]] = None
        # `datasets`' own tqdm bars would print across the progress display.
        with quiet_datasets_progress(defer_import=not steps_use_datasets(self.dag.steps.values())):
            try:
                # Written before any step runs, so the dump (with any inline dataset) is
                # freed before the run's own memory grows.
                pipeline_path = await asyncio.to_thread(
                    folder.write_config, self._dump_with(step_dumps)
                )
                del step_dumps
                if use_cache and max_generator_batches is None and self._all_stored(steps):
                    try:
                        tables = {name: stored_table(stored) for name, stored in leaf_steps.items()}
                        logger.info(
                            "Every step of %r is stored; returning the stored data.", self.name
                        )
                    except DamagedBatchError:  # named in a warning; its batches are recomputed
                        tables = None
                if tables is None:
                    await self._execute(folder, steps, show_progress, max_generator_batches)
            finally:
                await asyncio.to_thread(folder.close)
            raise_if_spent()
            if tables is None:
                tables = {name: stored_table(stored) for name, stored in leaf_steps.items()}
            failed = count_failed_rows(self._steps_that_can_fail(steps), tables)
            distiset = Distiset.from_tables(
                tables,
                enable_metadata=self.enable_metadata,
                pipeline_path=pipeline_path,
                failed_rows=failed,
                fingerprints={name: stored.content_id() for name, stored in leaf_steps.items()},
            )
        _log_failures(self.name, failed)
        return distiset

    def _all_stored(self, steps: dict[str, StepBatches]) -> bool:
        """Whether every leaf finished in an earlier run and no step has rows to retry."""
        if any(steps[name].completion() is None for name in self.dag.leaves):
            return False
        return all(stored.failed_rows()[0] == 0 for stored in steps.values())

    def _steps_that_can_fail(self, steps: dict[str, StepBatches]) -> dict[str, StepBatches]:
        """The stored batches of the steps that record failed rows (all but plain
        generators, which stop the run when they fail), in pipeline order."""
        return {
            name: steps[name]
            for name in self.dag.topological_order()
            if isinstance(self.dag.steps[name], _Task)
            or not isinstance(self.dag.steps[name], GeneratorStep)
        }

    async def _execute(
        self,
        folder: RunFolder,
        steps: dict[str, StepBatches],
        show_progress: Optional[bool],
        max_generator_batches: Optional[int],
    ) -> None:
        enabled = self.show_progress if show_progress is None else show_progress
        progress = Progress(enabled and os.environ.get("POTSTILL_PROGRESS", "1") != "0")
        for name, stored in steps.items():
            failed, batches = stored.failed_rows()
            if failed:
                logger.info(
                    "Step %r: retrying %d row(s) that failed in an earlier run (in %d "
                    "batch(es)); requests answered before come from its journal.",
                    name,
                    failed,
                    batches,
                )
        engine = Engine(
            self.dag, folder, steps, progress, max_generator_batches, self.use_response_cache
        )
        self._prepare_engine(engine)
        stop_when_spent(engine)
        logger.info("Running pipeline %r (%d steps).", self.name, len(self.dag.steps))
        progress.start(expected_rows(self.dag))
        try:
            await engine.run()
        finally:
            progress.stop()

    def get_runtime_parameters_info(self) -> dict[str, list[dict[str, Any]]]:
        """The runtime parameters of every step, as `run(params=...)` takes them.

        Returns:
            Step name -> that step's `get_runtime_parameters_info()`.
        """
        return {name: step.get_runtime_parameters_info() for name, step in self.dag.steps.items()}

    def dry_run(
        self,
        params: Optional[Params] = None,
        batch_size: int = 1,
        *,
        parameters: Optional[Params] = None,
    ) -> Distiset:
        """Runs a single batch of `batch_size` rows through the pipeline, without caching.

        Args:
            params: as for `run`; generator `batch_size`s are set to `batch_size` on top.
            batch_size: rows in the one batch each generator produces.
            parameters: distilabel's name for `params`.

        Returns:
            The Distiset of that one batch.
        """
        merged = {name: dict(values) for name, values in _params(params, parameters).items()}
        generators = {
            name: step for name, step in self.dag.steps.items() if isinstance(step, GeneratorStep)
        }
        for name in generators:
            merged.setdefault(name, {})["batch_size"] = batch_size
        # The forced batch size is for this dry run only: a later `run()` uses the real one.
        saved = {name: step.batch_size for name, step in generators.items()}
        try:
            with tempfile.TemporaryDirectory(prefix="potstill-dry-run-") as tmp:
                return run_sync(
                    self.arun(
                        params=merged,
                        use_cache=False,
                        show_progress=False,
                        _max_generator_batches=1,
                        _cache_dir=Path(tmp),
                    )
                )
        finally:
            for name, step in generators.items():
                step.batch_size = saved[name]

    # -- serialization -------------------------------------------------------------------

    def _check_saveable(self, data: dict[str, Any]) -> None:
        """Warns (from `save`) about each step whose class, or its LLM's, is defined in the
        running script or inside a function: no other program can load it from the file."""
        for step, class_name, where in _unloadable_classes(data):
            warnings.warn(
                f"Step {step!r} uses class {class_name}, defined {where}: the saved file "
                "names it, but `potstill pipeline run` and other programs cannot load it "
                f"from there. {importable_module_advice(class_name)}",
                UserWarning,
                stacklevel=3,  # the caller of `save`
            )

    def dump(self, **kwargs: Any) -> dict[str, Any]:
        """The pipeline as a dict: its steps (with their LLMs), connections and routing
        batch functions (when there are any)."""
        return self._dump_with({name: step.dump(**kwargs) for name, step in self.dag.steps.items()})

    def _dump_with(self, step_dumps: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """`dump()` from the steps' dumps (a run dumps each step once: an inline dataset is
        big)."""
        body: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "steps": [{"step": step_dumps[name], "name": name} for name in self.dag.steps],
            "connections": self.dag.connections(),
        }
        if self.dag.routing_batch_functions:
            body["routing_batch_functions"] = [
                {"step": name, "routing_batch_function": function.dump()}
                for name, function in self.dag.routing_batch_functions.items()
            ]
        body[TYPE_INFO_KEY] = type(self).type_info()
        return {"potstill": {"version": __version__}, "pipeline": body}

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], *, allowed_modules: Any = (), allow_remote_code: bool = False
    ) -> Pipeline:
        """Rebuilds a pipeline from `dump()`; only potstill or allowed classes are loaded.

        Args:
            data: the dump.
            allowed_modules: modules outside potstill whose classes the dump may name.
            allow_remote_code: let the dump set `trust_remote_code` on an LLM (its model
                repository's code then runs when it loads); refused otherwise.

        Returns:
            The pipeline.

        Raises:
            RemoteCodeError: when the dump sets `trust_remote_code` and
                `allow_remote_code` is not given.
        """
        refuse_remote_code(data, allow_remote_code)
        body = data.get("pipeline", data)
        if not isinstance(body, dict) or "steps" not in body:
            raise PotstillUserError("Not a pipeline dump: expected a 'pipeline' with 'steps'.")
        target: type[Pipeline] = cls
        if TYPE_INFO_KEY in body:
            target = resolve_class(body[TYPE_INFO_KEY], Pipeline, allowed_modules)
        pipeline = target(name=body.get("name"), description=body.get("description"))
        with pipeline:
            for entry in body["steps"]:
                _Step.from_dict(
                    entry["step"], allowed_modules=allowed_modules, allow_remote_code=True
                )
        for connection in body.get("connections", []):
            for destination in connection["to"]:
                pipeline.dag.add_edge(connection["from"], destination)
        for entry in body.get("routing_batch_functions") or []:
            function = RoutingBatchFunction.from_dict(
                entry["routing_batch_function"], allowed_modules=allowed_modules
            )
            pipeline.dag.steps[entry["step"]]._route_with(function)
        return pipeline

    def __repr__(self) -> str:
        return f"Pipeline(name={self.name!r}, steps={list(self.dag.steps)})"


BasePipeline = Pipeline
"""distilabel's name for the base of its pipelines, for type hints; potstill has one
pipeline class."""


def _unloadable_classes(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(step name, class name, where it was defined) for each class in a pipeline dump that
    only the program that defined it can load."""
    found = []
    for entry in data.get("pipeline", {}).get("steps", []):
        for info in _type_infos(entry.get("step")):
            where = defined_where(str(info.get("module")), str(info.get("name")))
            if where is not None:
                found.append((str(entry.get("name")), str(info["name"]).split(".")[-1], where))
    return found


def _type_infos(value: Any) -> list[dict[str, str]]:
    """Every `type_info` in a (nested) dump."""
    if isinstance(value, list):
        return [info for item in value for info in _type_infos(item)]
    if not isinstance(value, dict):
        return []
    infos = [value[TYPE_INFO_KEY]] if isinstance(value.get(TYPE_INFO_KEY), dict) else []
    return infos + [info for item in value.values() for info in _type_infos(item)]


def _log_failures(name: str, failed: FailedRows) -> None:
    """One warning at the end of a run that failed on some rows."""
    if not failed:
        return
    logger.warning(
        "Pipeline %r: %s of %s output rows failed; each keeps its error in the "
        "`potstill_metadata` column, and `distiset.failed_rows` has the counts. %s",
        name,
        f"{failed.total:,}",
        f"{failed.total_rows:,}",
        "; ".join(failed.describe()),
    )


def _params(params: Optional[Params], parameters: Optional[Params]) -> Params:
    if params is not None and parameters is not None:
        raise PotstillUserError(
            "Give runtime parameters as `params=` or `parameters=` (distilabel's name), not both."
        )
    given = params if params is not None else parameters
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise PotstillUserError(
            "`params` must be a dict of step name -> that step's runtime parameters, e.g. "
            "`{'text_generation_0': {'llm': {'generation_kwargs': {...}}}}`; got "
            f"{type(given).__name__}."
        )
    return dict(given)
