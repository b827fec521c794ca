"""The `LLM` and `AsyncLLM` base classes.

Providers implement only what talks to their API: `model_name`, `load()` and either
`generate` (synchronous, batched, local models) or `agenerate` (one input, async, hosted
APIs). Everything else lives here once: the loaded check, generation-kwargs validation,
bounded concurrency, per-request error isolation, usage accounting and the sync entry point
that works in scripts, notebooks and threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import threading
import time
import weakref
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, ClassVar, Optional

from pydantic import (
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from potstill.errors import LLMNotLoadedError, PotstillUserError
from potstill.llms.cache import (
    ResponseStore,
    active_stores,
    default_response_cache_dir,
    open_store,
    request_key,
)
from potstill.llms.generation_kwargs import GenerationKwargsSpec, spec_for
from potstill.llms.limits import RateLimiter
from potstill.llms.retry import backoff_delay, classify
from potstill.llms.retry import describe as describe_failure
from potstill.llms.typing import GenerateOutput, Generations, HiddenState
from potstill.llms.usage import UsageSummary, UsageTracker
from potstill.mixins.runtime_parameters import (
    ParameterPlace,
    RuntimeParameter,
    RuntimeParametersMixin,
    assigning_place,
)
from potstill.typing import ChatType
from potstill.utils.batch_progress import current_batch_progress
from potstill.utils.docstring import parse_google_docstring
from potstill.utils.fields import ExecutionOnly, is_secret_field, without_execution_fields
from potstill.utils.imports import require
from potstill.utils.portal import portal, run_sync
from potstill.utils.secrets import (
    hide_secret_inputs,
    redact,
    register_environment_secrets,
    register_secrets_of,
)
from potstill.utils.serialization import _Serializable, dump_model

_MAX_ERROR_CHARS = 500
_LOGGED_REPEATS = 3


def _marks_loaded(load: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(load)
    def wrapper(self: LLM, *args: Any, **kwargs: Any) -> Any:
        try:
            result = load(self, *args, **kwargs)
        except BaseException:
            # `super().load()` may have marked it loaded before the subclass's part failed.
            self._loaded = False
            raise
        self._loaded = True
        return result

    return wrapper


def _requires_loaded(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps a subclass's `generate`/`agenerate` so that it refuses to run unloaded."""
    if inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def async_wrapper(self: LLM, *args: Any, **kwargs: Any) -> Any:
            self._ensure_loaded(method.__name__)
            return await method(self, *args, **kwargs)

        async_wrapper._potstill_checked = True  # type: ignore[attr-defined]
        return async_wrapper

    @functools.wraps(method)
    def wrapper(self: LLM, *args: Any, **kwargs: Any) -> Any:
        self._ensure_loaded(method.__name__)
        return method(self, *args, **kwargs)

    wrapper._potstill_checked = True  # type: ignore[attr-defined]
    return wrapper


class LLM(RuntimeParametersMixin, _Serializable, ABC):
    """Base class for LLMs that generate synchronously for a batch of inputs.

    Subclasses implement `model_name` and `generate`, and call `super().load()` if they
    override `load`. The keyword arguments of `generate` (other than `inputs` and
    `num_generations`) are the LLM's generation kwargs: runtime parameters given under
    `generation_kwargs`, described by the `Args:` section of `generate`'s docstring.

    Attributes:
        generation_kwargs: the kwargs passed to `generate`/`agenerate` by tasks. Values given
            to `Pipeline.run(params=...)` are merged over the ones given to the constructor.
        use_response_cache: reuse answers cached on disk for identical requests.
        response_cache_dir: where the response cache lives.
    """

    model_config = ConfigDict(
        arbitrary_types_allowed=True,
        protected_namespaces=(),
        validate_default=True,
        validate_assignment=True,
        extra="forbid",
    )

    generation_kwargs: Optional[RuntimeParameter[dict[str, Any]]] = Field(
        default_factory=dict,
        description="The kwargs to be propagated to either `generate` or `agenerate` "
        "methods within each `LLM`.",
    )
    use_response_cache: ExecutionOnly[RuntimeParameter[bool]] = Field(
        default=False,
        description="Reuse answers cached on disk for identical requests (same model, "
        "conversation, generation kwargs and generation index) and cache new ones.",
    )
    response_cache_dir: ExecutionOnly[Optional[RuntimeParameter[str]]] = Field(
        default=None,
        description="Where the response cache lives (default `$POTSTILL_RESPONSE_CACHE_DIR` "
        "or `~/.cache/potstill/responses`).",
    )

    sdk_module: ClassVar[Optional[str]] = None
    """The SDK this LLM needs; `load()` fails with the `pip install` fix when it is missing."""
    sdk_extra: ClassVar[Optional[str]] = None
    """The potstill extra that installs `sdk_module` (defaults to its name)."""
    api_key_env_var: ClassVar[Optional[str]] = None
    """The env var the `api_key` field defaults to; `load()` fails naming it when unset."""

    _loaded: bool = PrivateAttr(default=False)
    _logger: Optional[logging.Logger] = PrivateAttr(default=None)
    _usage: UsageTracker = PrivateAttr(default_factory=UsageTracker)
    _generate_lock: Any = PrivateAttr(default_factory=threading.Lock)
    _constructor_generation_kwargs: dict[str, Any] = PrivateAttr(default_factory=dict)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "load" in cls.__dict__:
            cls.load = _marks_loaded(cls.__dict__["load"])  # type: ignore[method-assign]
        for name in ("generate", "agenerate"):
            method = cls.__dict__.get(name)
            if method is not None and not getattr(method, "_potstill_checked", False):
                setattr(cls, name, _requires_loaded(method))

    @model_validator(mode="wrap")
    @classmethod
    def _guard_secrets(cls, data: Any, handler: Callable[[Any], LLM]) -> LLM:
        """Registers the secrets the LLM holds (so they are redacted from every error and
        log line), and hides secret inputs from validation errors."""
        try:
            llm = handler(data)
        except ValidationError as error:
            raise hide_secret_inputs(error, _secret_fields(cls)) from None
        register_secrets_of(llm)
        return llm

    @model_validator(mode="after")
    def _validate_generation_kwargs(self) -> LLM:
        self.generation_spec().validate(
            self.generation_kwargs or {},
            where=self._runtime_parameters_label(),
            elsewhere=ParameterPlace(self, ("generation_kwargs",)).elsewhere,
        )
        return self

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            # Also the errors of subclasses' model validators, whose input is every field.
            raise hide_secret_inputs(error, _secret_fields(type(self))) from None

    def model_post_init(self, context: Any) -> None:
        super().model_post_init(context)
        self._constructor_generation_kwargs = dict(self.generation_kwargs or {})

    # -- lifecycle ---------------------------------------------------------------------

    def load(self) -> None:
        """Prepares the LLM for use (clients, models). Must run before `generate`.

        Checks that the SDK is installed and that an API key is set, where the class
        declares `sdk_module` / `api_key_env_var`.
        """
        # SDKs may read a provider's key env var by themselves: hide those values too.
        register_environment_secrets()
        if self.sdk_module:
            require(self.sdk_module, self.sdk_extra or self.sdk_module)
        if self.api_key_env_var and getattr(self, "api_key", None) is None:
            raise PotstillUserError(
                f"To use `{type(self).__name__}` an API key must be provided via `api_key` "
                f"attribute or runtime parameter, or set the environment variable "
                f"`{self.api_key_env_var}`."
            )
        self._loaded = True

    def _secret(self, name: str = "api_key") -> Optional[str]:
        """The plain value of a `SecretStr` field, for handing to an SDK client."""
        value = getattr(self, name, None)
        return value.get_secret_value() if value is not None else None

    def unload(self) -> None:
        """Releases what `load` acquired; the LLM must be loaded again before use."""
        self._loaded = False

    @property
    def is_loaded(self) -> bool:
        """Whether `load()` has run (and `unload()` has not run since)."""
        return self._loaded

    def _ensure_loaded(self, action: str) -> None:
        if not self._loaded:
            raise LLMNotLoadedError(
                f"{type(self).__name__} is not loaded: call `llm.load()` before `{action}`. "
                "(A task loads its LLM in `task.load()`, and `Pipeline.run` loads everything.)"
            )

    @property
    def logger(self) -> logging.Logger:
        """The logger `potstill.llm.<model_name>`."""
        if self._logger is None:
            try:
                name = self.model_name
            except Exception:
                name = type(self).__name__
            self._logger = logging.getLogger(f"potstill.llm.{name}")
        return self._logger

    # -- the contract ------------------------------------------------------------------

    @property
    @abstractmethod
    def model_name(self) -> str:
        """The name of the model this LLM uses."""

    @abstractmethod
    def generate(
        self, inputs: list[ChatType], num_generations: int = 1, **kwargs: Any
    ) -> list[GenerateOutput]:
        """Generates `num_generations` texts for each input.

        Args:
            inputs: the conversations to continue.
            num_generations: how many generations per input.
            **kwargs: generation kwargs.

        Returns:
            One list per input with one entry per generation (`None` where one failed).
        """

    def get_last_hidden_state(self, inputs: list[ChatType]) -> list[HiddenState]:
        """Returns the last hidden state of the model for each input (optional).

        Args:
            inputs: the conversations to encode.

        Returns:
            One array of shape `(num_tokens, hidden_size)` per input.
        """
        if type(self).get_last_hidden_states is not LLM.get_last_hidden_states:
            return self.get_last_hidden_states(inputs)
        raise NotImplementedError(
            f"{type(self).__name__} does not implement `get_last_hidden_state`; use an LLM "
            "that exposes hidden states (e.g. TransformersLLM or LlamaCppLLM)."
        )

    def get_last_hidden_states(self, inputs: list[ChatType]) -> list[HiddenState]:
        """distilabel's name for `get_last_hidden_state`; either can be implemented."""
        if type(self).get_last_hidden_state is LLM.get_last_hidden_state:
            raise NotImplementedError(
                f"{type(self).__name__} does not implement `get_last_hidden_state`."
            )
        return self.get_last_hidden_state(inputs)

    # -- what tasks call ---------------------------------------------------------------

    def generate_outputs(
        self,
        inputs: list[ChatType],
        num_generations: int = 1,
        *,
        row_offset: int = 0,
        **kwargs: Any,
    ) -> list[Generations]:
        """Like `generate`, but never raises for a failed input and keeps usage.

        A batch that fails as a whole is retried input by input, so one bad input only
        costs its own generations.

        Args:
            inputs: the conversations to continue.
            num_generations: how many generations per input.
            row_offset: index of the first input in the dataset, for log messages.
            **kwargs: generation kwargs.

        Returns:
            One `Generations` per input.
        """
        self._ensure_loaded("generate")
        stores = self._response_stores()
        if not stores:
            return self._generate_isolated(inputs, num_generations, row_offset, kwargs)
        identity = self.cache_identity()
        keys = [
            self._request_key(single, kwargs, num_generations, None, identity) for single in inputs
        ]
        results: list[Optional[Generations]] = [
            _lookup(stores, key, row_offset + index) for index, key in enumerate(keys)
        ]
        missing = [index for index, result in enumerate(results) if result is None]
        for _ in range(len(inputs) - len(missing)):
            self._usage.record_cached()
        progress = current_batch_progress()
        if progress is not None and len(missing) < len(inputs):
            progress.add(len(inputs) - len(missing))
        if missing:
            fresh = self._generate_isolated(
                [inputs[i] for i in missing], num_generations, row_offset, kwargs, missing
            )
            for index, generations in zip(missing, fresh):
                results[index] = generations
                _remember(stores, keys[index], row_offset + index, generations)
        return results  # type: ignore[return-value]

    def _generate_isolated(
        self,
        inputs: list[ChatType],
        num_generations: int,
        row_offset: int,
        kwargs: dict[str, Any],
        rows: Optional[list[int]] = None,
    ) -> list[Generations]:
        """Calls `generate`; a batch that fails is retried input by input.

        Each call ends with exactly its inputs counted in the batch's progress, whatever
        `generate` reported itself; a call that fails takes its reports back before its
        inputs are retried."""
        if not inputs:  # e.g. every row of a batch failed `format_input`
            return []
        rows = rows if rows is not None else list(range(len(inputs)))
        progress = current_batch_progress()
        start = progress.done if progress is not None else 0.0
        try:
            # One call at a time per instance: local models are not thread-safe, and one
            # instance may serve several tasks, each in its own worker thread.
            with self._generate_lock:
                outputs = self.generate(inputs=inputs, num_generations=num_generations, **kwargs)
            results = [
                self._exactly(Generations.coerce(output), num_generations, row_offset + row)
                for output, row in zip(outputs, rows)
            ]
            if len(outputs) != len(inputs):
                raise RuntimeError(
                    f"`generate` returned {len(outputs)} outputs for {len(inputs)} inputs."
                )
        except Exception as error:
            if progress is not None:
                progress.settle(start if len(inputs) > 1 else start + len(inputs))
            if len(inputs) <= 1:
                return [self._failed(num_generations, error, row_offset + rows[0])] * len(inputs)
            return [
                output
                for index, single in enumerate(inputs)
                for output in self._generate_isolated(
                    [single], num_generations, row_offset, kwargs, [rows[index]]
                )
            ]
        for index, result in enumerate(results):
            if _all_failed(result):
                # `generate` isolated this input's failure itself (e.g. a prompt too long).
                self.logger.warning(
                    "Generation for row %d failed: %s", row_offset + rows[index], result.errors[0]
                )
                self._usage.record_failure(result.errors[0] or "")
            else:
                self._usage.record_success(result)
        if progress is not None:
            progress.settle(start + len(inputs))
        return results

    def _exactly(self, generations: Generations, expected: int, row: int) -> Generations:
        """The generations of one input cut or padded to the `expected` count: choices the
        provider added beyond it are dropped, missing ones fail (and are logged)."""
        if len(generations) < expected:
            missing = f"the provider returned {len(generations)} of {expected} generations"
            self.logger.warning("Row %d: %s.", row, missing)
            return generations.resized(expected, missing)
        return generations.resized(expected, "")

    def cache_identity(self) -> dict[str, Any]:
        """What identifies this LLM's answers in the response cache: its whole configuration
        (class, model, endpoint, project...) except generation kwargs (part of each request's
        key) and settings that do not change answers (limits, retries, timeouts)."""
        dump = without_execution_fields(self.dump(), type(self))
        dump.pop("generation_kwargs", None)
        return dump

    def _request_key(
        self,
        input: ChatType,
        kwargs: dict[str, Any],
        num_generations: Optional[int],
        index: Optional[int],
        identity: Optional[dict[str, Any]] = None,
    ) -> str:
        identity = identity if identity is not None else self.cache_identity()
        return request_key(identity, input, kwargs, num_generations, index)

    def _response_stores(self) -> tuple[ResponseStore, ...]:
        """The pipeline step's journal, plus the response cache when it is on."""
        stores = active_stores()
        if self.use_response_cache:
            folder = Path(self.response_cache_dir or default_response_cache_dir())
            cache = open_store(folder / "responses.jsonl")
            if cache not in stores:  # the pipeline may have turned on the same cache
                stores = (*stores, cache)
        return stores

    async def agenerate_outputs(
        self,
        inputs: list[ChatType],
        num_generations: int = 1,
        *,
        row_offset: int = 0,
        **kwargs: Any,
    ) -> list[Generations]:
        """Async `generate_outputs`: a synchronous LLM runs in a worker thread.

        Args:
            inputs: the conversations to continue.
            num_generations: how many generations per input.
            row_offset: index of the first input in the dataset, for log messages.
            **kwargs: generation kwargs.

        Returns:
            One `Generations` per input.
        """
        return await asyncio.to_thread(
            functools.partial(
                self.generate_outputs, inputs, num_generations, row_offset=row_offset, **kwargs
            )
        )

    def _failed(
        self, num_generations: int, error: BaseException, row: int, note: str = ""
    ) -> Generations:
        message = describe_error(error) + (f" ({note})" if note else "")
        decision = classify(error)
        endpoint = self.describe_endpoint()
        if decision.refused:
            # SDKs word this as "Connection error" or even "Request timed out": say what it is.
            where = f" (endpoint: {endpoint})" if endpoint else ""
            message = (
                f"ConnectionRefusedError: connection refused{where}: nothing accepts "
                "connections there; check the URL and that the server is running."
            )
        elif decision.retry and decision.status is None and endpoint:
            # A timeout or connection error: say where the requests went, so a wrong or
            # unreachable endpoint is obvious from the message.
            message = f"{message} (endpoint: {endpoint})"
        seen = self._usage.record_failure(message)
        # The same error on thousands of rows would drown the log: show the first few, then
        # every hundredth with its count. Every row keeps its error in its metadata.
        if seen <= _LOGGED_REPEATS:
            self.logger.warning("Generation for row %d failed: %s", row, message)
        elif seen % 100 == 0:
            self.logger.warning(
                "Generation for row %d failed: %s (%d rows so far with this error)",
                row,
                message,
                seen,
            )
        return Generations.failed(num_generations, message)

    def describe_endpoint(self) -> Optional[str]:
        """The URL or host the LLM sends requests to, named in error messages (`None` for a
        local model). Hosted providers override this.

        Returns:
            The endpoint, or `None`.
        """
        for name in ("base_url", "endpoint", "host", "api_base"):
            value = getattr(self, name, None)
            if isinstance(value, str) and value:
                return value
        return None

    @property
    def usage(self) -> UsageSummary:
        """Requests, failures, retries and tokens consumed by this instance so far."""
        return self._usage.summary()

    # -- generation kwargs as runtime parameters ----------------------------------------

    @classmethod
    def generation_method(cls) -> Callable[..., Any]:
        """The method whose keyword arguments are the generation kwargs."""
        return cls.generate

    @classmethod
    def generation_spec(cls) -> GenerationKwargsSpec:
        """Names, defaults, types and descriptions of the generation kwargs."""
        return spec_for(cls.generation_method())

    def get_generation_kwargs(self) -> dict[str, Any]:
        """The generation kwargs tasks pass to `generate`/`agenerate`."""
        return dict(self.generation_kwargs or {})

    @property
    def generate_parameters(self) -> list[inspect.Parameter]:
        """The parameters of `generate` (`agenerate` for an `AsyncLLM`), as distilabel
        exposes them."""
        method = getattr(self, type(self).generation_method().__name__)
        return list(inspect.signature(method).parameters.values())

    @property
    def generate_parsed_docstring(self) -> dict[str, Any]:
        """The parsed docstring of `generate`/`agenerate`: `short_description`, `args`
        (argument -> description) and `returns`."""
        parsed = parse_google_docstring(type(self).generation_method())
        return {"short_description": parsed.summary, "args": parsed.args, "returns": parsed.returns}

    @property
    def runtime_parameters_names(self) -> dict[str, Any]:
        names = super().runtime_parameters_names
        names["generation_kwargs"] = self.generation_spec().names()
        return names

    def get_runtime_parameters_info(self) -> list[dict[str, Any]]:
        info = super().get_runtime_parameters_info()
        for item in info:
            if item["name"] == "generation_kwargs":
                item["keys"] = self.generation_spec().info()
        return info

    def _runtime_parameters_label(self) -> str:
        return f"LLM {type(self).__name__}"

    def _assign_runtime_parameter(self, name: str, value: Any, where: str) -> None:
        if name == "generation_kwargs":
            place = assigning_place()
            coerced = self.generation_spec().validate(
                value, where=where, elsewhere=place.elsewhere if place is not None else None
            )
            merged = {**self._constructor_generation_kwargs, **coerced}
            # Assign without re-running the model validator (it would reset the base).
            self.__dict__["generation_kwargs"] = merged
            self._runtime_parameters[name] = value
            return
        super()._assign_runtime_parameter(name, value, where)

    # -- serialization -------------------------------------------------------------------

    def dump(self, **kwargs: Any) -> dict[str, Any]:
        """Dumps the LLM's configuration (secrets excluded) with its `type_info`."""
        return dump_model(self, **kwargs)


class AsyncLLM(LLM):
    """Base class for LLMs that generate for one input at a time, asynchronously.

    Subclasses implement `model_name`, `load` and `agenerate`; `generate` is provided here and
    must not be overridden. If `agenerate` takes `num_generations`, it is called once per input
    with it (native `n`); otherwise it is called `num_generations` times in parallel.

    Every request goes through this instance's limiter (at most `max_concurrent_requests` in
    flight, shared by every task that uses the instance). Transient failures (429, 5xx,
    timeouts, connection errors) are retried here, with exponential backoff and jitter that
    honours `Retry-After`, so SDK clients are created with their own retries turned off. A
    refused connection (nothing listens at the endpoint) is retried only within
    `refused_connection_retry_time`, so a wrong URL fails in about a second, not minutes. A
    request that still fails gives `None` for its generations only; the error is logged with
    the row index and kept.

    Requests and tokens per minute are paced evenly (see `potstill.llms.limits`); a 429 with
    `Retry-After` pauses every request of the instance for that long (at most 30 s). A
    `Retry-After` longer than what is left of the request's `max_retry_time` fails that
    request at once and pauses nothing; one that cannot be read counts as absent.

    Attributes:
        max_concurrent_requests: the most requests this LLM has in flight at once.
        max_retries: retries per request after the first attempt.
        max_retry_time: the most seconds a request may spend across attempts and waits.
        refused_connection_retry_time: the most seconds a request keeps retrying while the
            endpoint refuses connections (nothing listens there).
        retry_backoff: the backoff before the first retry (doubling, jittered).
        requests_per_minute: the most requests started per minute.
        tokens_per_minute: the most input + output tokens per minute.
        input_tokens_per_minute: the most input tokens per minute.
        output_tokens_per_minute: the most output tokens per minute.
    """

    max_concurrent_requests: ExecutionOnly[RuntimeParameter[PositiveInt]] = Field(
        default=64,
        description="The most requests this LLM sends at once, shared by every task using it.",
    )
    max_retries: ExecutionOnly[RuntimeParameter[NonNegativeInt]] = Field(
        default=6,
        description="The maximum number of times to retry the request to the API before "
        "failing (on rate limits, server errors, timeouts and connection errors).",
    )
    max_retry_time: ExecutionOnly[RuntimeParameter[PositiveFloat]] = Field(
        default=600.0,
        description="The most seconds one request may spend across all its attempts and "
        "waits before it is given up.",
    )
    refused_connection_retry_time: ExecutionOnly[RuntimeParameter[NonNegativeFloat]] = Field(
        default=1.0,
        description="The most seconds a request keeps retrying while the endpoint refuses "
        "connections (nothing listens there: a wrong URL or a server that is not running); "
        "0 gives up at once. Raise it when the server may still be starting.",
    )
    retry_backoff: ExecutionOnly[RuntimeParameter[PositiveFloat]] = Field(
        default=0.5,
        description="The backoff before the first retry, in seconds; it doubles with each "
        "retry (with full jitter, capped at 30 s) unless the server sends `Retry-After`.",
    )
    requests_per_minute: ExecutionOnly[Optional[RuntimeParameter[PositiveFloat]]] = Field(
        default=None,
        description="The most requests this LLM starts per minute (spread evenly), shared "
        "by every task using it.",
    )
    tokens_per_minute: ExecutionOnly[Optional[RuntimeParameter[PositiveFloat]]] = Field(
        default=None,
        description="The most tokens (input + output) per minute, shared by every task "
        "using this LLM.",
    )
    input_tokens_per_minute: ExecutionOnly[Optional[RuntimeParameter[PositiveFloat]]] = Field(
        default=None, description="The most input (prompt) tokens per minute."
    )
    output_tokens_per_minute: ExecutionOnly[Optional[RuntimeParameter[PositiveFloat]]] = Field(
        default=None, description="The most output (generated) tokens per minute."
    )

    _ignores_n: bool = PrivateAttr(default=False)
    _loop_states: Any = PrivateAttr(default_factory=weakref.WeakKeyDictionary)
    _limiter: RateLimiter = PrivateAttr(default_factory=RateLimiter)
    _limits: tuple[Any, ...] = PrivateAttr(default=())

    @abstractmethod
    async def agenerate(
        self, input: ChatType, num_generations: int = 1, **kwargs: Any
    ) -> GenerateOutput:
        """Generates for one input.

        Args:
            input: the conversation to continue.
            num_generations: how many generations (omit the argument if the API has no `n`).
            **kwargs: generation kwargs.

        Returns:
            The generations (a `Generations` to also report usage).
        """

    @classmethod
    def generation_method(cls) -> Callable[..., Any]:
        return cls.agenerate

    def generate(  # type: ignore[override]
        self, inputs: list[ChatType], num_generations: int = 1, **kwargs: Any
    ) -> list[GenerateOutput]:
        """Generates for every input concurrently; works from scripts, notebooks and threads.

        Args:
            inputs: the conversations to continue.
            num_generations: how many generations per input.
            **kwargs: generation kwargs.

        Returns:
            One `Generations` (a list of texts) per input, in input order.
        """
        self._ensure_loaded("generate")
        return run_sync(self.agenerate_outputs(inputs, num_generations, **kwargs))  # type: ignore[return-value]

    def generate_outputs(
        self,
        inputs: list[ChatType],
        num_generations: int = 1,
        *,
        row_offset: int = 0,
        **kwargs: Any,
    ) -> list[Generations]:
        self._ensure_loaded("generate")
        return run_sync(
            self.agenerate_outputs(inputs, num_generations, row_offset=row_offset, **kwargs)
        )

    async def agenerate_outputs(
        self,
        inputs: list[ChatType],
        num_generations: int = 1,
        *,
        row_offset: int = 0,
        **kwargs: Any,
    ) -> list[Generations]:
        self._ensure_loaded("generate")
        num_generations = _positive_int("num_generations", num_generations)
        native = self.generation_spec().native_num_generations
        # Each request reports its share of an input to the batch's progress.
        batch = _RequestContext(self, 1.0 if native else 1.0 / num_generations)
        if native:
            calls = [
                self._request(batch, single, num_generations, kwargs, row_offset + index)
                for index, single in enumerate(inputs)
            ]
            return list(await asyncio.gather(*calls))
        calls = [
            self._request(batch, single, None, kwargs, row_offset + index, generation)
            for index, single in enumerate(inputs)
            for generation in range(num_generations)
        ]
        flat = await asyncio.gather(*calls)
        return [
            Generations.concat(flat[start : start + num_generations])
            for start in range(0, len(flat), num_generations)
        ]

    async def _request(
        self,
        batch: _RequestContext,
        input: ChatType,
        num_generations: Optional[int],
        kwargs: dict[str, Any],
        row: int,
        index: Optional[int] = None,
    ) -> Generations:
        """One request: from the journal/cache if answered before, else limited and retried."""
        stores = batch.stores
        key = (
            self._request_key(input, kwargs, num_generations, index, batch.identity)
            if stores
            else None
        )
        if key is not None:
            cached = _lookup(stores, key, row)
            if cached is not None:
                batch.usage.record_cached()
                if batch.progress is not None:
                    batch.progress.add(batch.share)
                return cached
        if num_generations is None:
            generations = self._exactly(await self._send(batch, input, None, kwargs, row), 1, row)
        else:
            generations = await self._native(batch, input, num_generations, kwargs, row)
        if key is not None:
            _remember(stores, key, row, generations)
        if batch.progress is not None:
            batch.progress.add(batch.share)
        return generations

    async def _native(
        self,
        batch: _RequestContext,
        input: ChatType,
        num_generations: int,
        kwargs: dict[str, Any],
        row: int,
    ) -> Generations:
        """`num_generations` generations through the API's `n`.

        Some servers and proxies ignore `n` and answer one choice. The missing generations
        are then requested one by one (in parallel), and this instance remembers that its
        endpoint ignores `n`: later inputs send `num_generations` requests of one
        generation each at once, instead of paying a round trip for one choice first.
        """
        if self._ignores_n and num_generations > 1:
            batch.usage.record_extra(num_generations - 1)
            parts = await asyncio.gather(
                *(self._send(batch, input, 1, kwargs, row) for _ in range(num_generations))
            )
            return self._exactly(Generations.concat(parts), num_generations, row)
        generations = await self._send(batch, input, num_generations, kwargs, row)
        short = num_generations - len(generations)
        if short > 0 and generations:
            if not self._ignores_n:
                self._ignores_n = True
                self.logger.info(
                    "Row %d: the endpoint returned %d of %d generations (it ignores `n`); "
                    "the missing ones are requested separately, and this LLM sends one "
                    "request per generation from now on.",
                    row,
                    len(generations),
                    num_generations,
                )
            batch.usage.record_extra(short)
            extra = await asyncio.gather(
                *(self._send(batch, input, 1, kwargs, row) for _ in range(short))
            )
            generations = Generations.concat([generations, *extra])
        return self._exactly(generations, num_generations, row)

    async def _send(
        self,
        batch: _RequestContext,
        input: ChatType,
        num_generations: Optional[int],
        kwargs: dict[str, Any],
        row: int,
    ) -> Generations:
        """Calls `agenerate` under the limits, retrying transient failures.

        Returns at most `num_generations` (or 1) generations: choices beyond them are
        dropped; fewer come back as the provider sent them (the caller completes them).
        """
        expected = num_generations or 1
        extra = {} if num_generations is None else {"num_generations": num_generations}
        limiter = batch.limiter
        started = time.monotonic()
        deadline = started + (self.max_retry_time or 0)
        # A refused connection is usually a wrong URL or a stopped server: retried briefly.
        refused_deadline = min(deadline, started + (self.refused_connection_retry_time or 0))
        attempt = 0
        while True:
            async with batch.semaphore:
                reservation = (
                    await limiter.acquire(input, self.output_token_cap(kwargs))
                    if limiter.active
                    else None
                )
                try:
                    output = await batch.agenerate(input=input, **extra, **kwargs)
                    break
                except Exception as error:
                    failure = error
            decision = classify(failure)
            left = deadline - time.monotonic()
            # A wait that would outlast the request's budget is not waited for: the request
            # fails now, and the others are not paused for a wait nobody will use.
            fits = decision.wait is None or decision.wait <= left
            if decision.status == 429 and decision.wait and fits:
                limiter.cool_down(decision.wait)  # capped: see RateLimiter.cool_down
            if not decision.retry or attempt >= (self.max_retries or 0):
                return self._failed(expected, failure, row)
            if not fits:
                note = (
                    f"the server asked to wait {decision.wait:g} s (Retry-After), more than "
                    f"the {max(left, 0):.0f} s left of max_retry_time={self.max_retry_time:g}"
                )
                return self._failed(expected, failure, row, note)
            delay = (
                decision.wait
                if decision.wait is not None
                else backoff_delay(attempt, base=self.retry_backoff or 0.5)
            )
            if time.monotonic() + delay > (refused_deadline if decision.refused else deadline):
                return self._failed(expected, failure, row)
            batch.usage.record_retry()
            self.logger.debug(
                "Row %d: %s, retrying in %.2f s (retry %d of %d).",
                row,
                describe_failure(failure),
                delay,
                attempt + 1,
                self.max_retries,
            )
            await asyncio.sleep(delay)
            attempt += 1
        generations = Generations.coerce(output)
        if len(generations) > expected:  # choices beyond the ones asked for are dropped
            generations = generations.resized(expected, "")
        if reservation is not None:
            usage = generations.usage
            limiter.settle(reservation, usage.input_tokens, usage.output_tokens)
        batch.usage.record_success(generations)
        return generations

    def output_token_cap(self, kwargs: dict[str, Any]) -> Optional[int]:
        """The most output tokens a request with these generation kwargs may produce (for the
        tokens-per-minute limits), under the names providers use for it.

        Args:
            kwargs: the request's generation kwargs.

        Returns:
            The cap, or `None` when the request sets none.
        """
        for name in ("max_new_tokens", "max_tokens", "max_output_tokens"):
            value = kwargs.get(name)
            if isinstance(value, int):
                return value
        return None

    def _rate_limiter(self) -> RateLimiter:
        limits = (
            self.requests_per_minute,
            self.tokens_per_minute,
            self.input_tokens_per_minute,
            self.output_tokens_per_minute,
        )
        if limits != self._limits:
            self._limiter.configure(*limits)
            self._limits = limits
        return self._limiter

    # -- per event-loop state -----------------------------------------------------------

    def _loop_state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._loop_states.get(loop)
        if state is None:
            state = self._loop_states[loop] = _LoopState()
        state.fit_limit(self.max_concurrent_requests or 1)
        return state

    def _create_client(self) -> Any:
        """Creates the provider's async SDK client (providers override this)."""
        return None

    @property
    def client(self) -> Any:
        """The SDK client for the running event loop (async clients are bound to a loop)."""
        try:
            state = self._loop_state()
        except RuntimeError:  # no running loop: a throwaway client, e.g. for inspection
            return self._create_client()
        if state.client is None:
            state.client = self._create_client()
            _OPEN_LLMS[id(self)] = self
            # An LLM dropped without `unload()` still closes its client (and connections).
            state.finalizer = weakref.finalize(
                self, _close_orphaned_client, asyncio.get_running_loop(), state.client
            )
            state.finalizer.atexit = False  # at exit, the portal's shutdown hook closes it
        return state.client

    async def _aclose_client(self, client: Any) -> None:
        """Closes an SDK client (providers override this when theirs closes differently)."""
        await _close_client(client)

    def unload(self) -> None:
        """Closes the SDK clients (on the event loops they belong to)."""
        states, self._loop_states = self._loop_states, weakref.WeakKeyDictionary()
        for loop, state in list(states.items()):
            state.detach_finalizer()
            if state.client is not None:
                _run_on_loop(loop, self._aclose_client(state.client))
        _OPEN_LLMS.pop(id(self), None)
        super().unload()


# LLMs with an open SDK client (weakly: a collected LLM closes its client in its finalizer).
_OPEN_LLMS: weakref.WeakValueDictionary[int, AsyncLLM] = weakref.WeakValueDictionary()


async def _close_open_clients() -> None:
    """Closes the SDK clients still open on the portal loop when the interpreter exits."""
    for llm in list(_OPEN_LLMS.values()):
        state = llm._loop_states.get(asyncio.get_running_loop())
        if state is not None and state.client is not None:
            state.detach_finalizer()
            client, state.client = state.client, None
            with contextlib.suppress(Exception):
                await llm._aclose_client(client)


portal.on_shutdown(_close_open_clients)


def _run_on_loop(loop: asyncio.AbstractEventLoop, coroutine: Any) -> None:
    """Runs a cleanup coroutine on `loop`, from whatever thread we are on."""
    if loop.is_closed():
        coroutine.close()
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        loop.create_task(coroutine)
    elif loop.is_running():
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=10)
    else:
        coroutine.close()


async def _close_client(client: Any) -> None:
    """Closes an SDK client through its `close()` or `aclose()` (sync or async)."""
    close = getattr(client, "close", None) or getattr(client, "aclose", None)
    if close is not None:
        result = close()
        if inspect.isawaitable(result):
            await result


_ORPHAN_CLOSES: set[asyncio.Task[Any]] = set()


def _close_orphaned_client(loop: asyncio.AbstractEventLoop, client: Any) -> None:
    """Closes, on its own loop and without blocking, the client of a collected AsyncLLM."""

    async def close_quietly() -> None:
        with contextlib.suppress(Exception):
            await _close_client(client)

    def schedule() -> None:
        task = loop.create_task(close_quietly())
        _ORPHAN_CLOSES.add(task)
        task.add_done_callback(_ORPHAN_CLOSES.discard)

    if not loop.is_closed():
        with contextlib.suppress(RuntimeError):  # the loop closed in the meantime
            loop.call_soon_threadsafe(schedule)


class _RequestContext:
    """What every request of one `agenerate_outputs` call needs, looked up once per batch
    (pydantic private attributes are slow to read on a hot path)."""

    __slots__ = (
        "agenerate",
        "identity",
        "limiter",
        "progress",
        "semaphore",
        "share",
        "stores",
        "usage",
    )

    def __init__(self, llm: AsyncLLM, share: float = 1.0) -> None:
        self.progress = current_batch_progress()
        self.share = share  # of an input, that one request is
        self.stores = llm._response_stores()
        self.identity = llm.cache_identity() if self.stores else None
        self.limiter = llm._rate_limiter()
        self.semaphore = llm._loop_state().semaphore
        self.usage = llm._usage
        # The loaded check ran for the batch: call the validated `agenerate` directly.
        method = type(llm).agenerate
        self.agenerate = functools.partial(getattr(method, "__wrapped__", method), llm)


class _LoopState:
    """What an AsyncLLM keeps per event loop: its SDK client and its limiter."""

    def __init__(self) -> None:
        self.client: Any = None
        self.finalizer: Optional[weakref.finalize] = None
        self.limit = 0
        self.semaphore = asyncio.Semaphore(1)

    def detach_finalizer(self) -> None:
        """Cancels the close-on-collection of the client (it is closed explicitly)."""
        if self.finalizer is not None:
            self.finalizer.detach()
            self.finalizer = None

    def fit_limit(self, max_concurrent_requests: int) -> None:
        """Applies a changed `max_concurrent_requests` to the requests that start next."""
        if max_concurrent_requests != self.limit:
            self.limit = max_concurrent_requests
            self.semaphore = asyncio.Semaphore(max_concurrent_requests)


def _lookup(stores: tuple[ResponseStore, ...], key: str, row: int) -> Optional[Generations]:
    """The first stored answer for the request; copied into the stores that lacked it."""
    for position, store in enumerate(stores):
        found = store.get(store.key(key, row))
        if found is not None:
            for other in stores[:position]:
                other.put(other.key(key, row), found)
            return found
    return None


def _remember(
    stores: tuple[ResponseStore, ...], key: str, row: int, generations: Generations
) -> None:
    for store in stores:
        store.put(store.key(key, row), generations)


def _positive_int(name: str, value: Any) -> int:
    """Coerces an argument like `validate_call` would (`"2"` -> 2), or fails naming it."""
    try:
        return _POSITIVE_INT.validate_python(value)
    except ValidationError:
        raise PotstillUserError(f"`{name}` must be a positive integer, got {value!r}.") from None


_POSITIVE_INT: TypeAdapter[int] = TypeAdapter(PositiveInt)


def _all_failed(generations: Generations) -> bool:
    """Whether every generation of an input is `None` with an error recorded."""
    return bool(generations) and all(
        text is None and error is not None for text, error in zip(generations, generations.errors)
    )


@functools.cache
def _secret_fields(cls: type[LLM]) -> set[str]:
    return {name for name, field in cls.model_fields.items() if is_secret_field(field)}


def describe_error(error: BaseException) -> str:
    """A one-line description of an exception for logs and metadata, with every known
    secret value hidden (a server may echo the key it was sent)."""
    text = redact(f"{type(error).__name__}: {error}".strip())
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 3] + "..."
