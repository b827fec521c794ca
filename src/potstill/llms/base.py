"""The `LLM` base class: the contract every LLM implements, its lifecycle and its generation
kwargs.

A provider implements `model_name` and either `generate` (a synchronous LLM that generates for
a batch at once: local models) or, subclassing `AsyncLLM` (`potstill.llms.async_llm`),
`agenerate` (one input, async: hosted APIs). This module holds what every LLM shares:

- the lifecycle: `load()` / `unload()`, and the check that refuses to generate before `load()`
  (`generate`/`agenerate` of every subclass are wrapped at class creation: see `loading`);
- the generation kwargs: the keyword arguments of `generate`/`agenerate` are runtime
  parameters under `generation_kwargs`, validated whenever they are set;
- what tasks call: `generate_outputs` / `agenerate_outputs`, which never raise for a failed
  input and keep usage.

How a batch runs lives beside it: `sync_batches` (a synchronous LLM's batch), `requests` (an
AsyncLLM's requests, limits and retries), `failures` (what a failed request leaves), `cache`
(the journal and the response cache), `clients` (an AsyncLLM's SDK clients per event loop).
`local` is the base of the in-process models; `testing` has LLMs for tests.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import threading
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Optional

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PrivateAttr,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from potstill.errors import LLMNotLoadedError, PotstillUserError
from potstill.llms.failures import describe_error
from potstill.llms.generation_kwargs import GenerationKwargsSpec, spec_for
from potstill.llms.loading import marks_loaded, requires_loaded
from potstill.llms.pricing import LOCAL_PROVIDERS, Price, TokenPrice, llm_provider, resolve_price
from potstill.llms.structured import (
    StructuredOutput,
    StructuredOutputType,
    check_structured_output,
    split_inputs,
)
from potstill.llms.sync_batches import generate_batch, generate_structured_batch
from potstill.llms.typing import GenerateOutput, Generations, HiddenState
from potstill.llms.usage import UsageSummary, UsageTracker
from potstill.mixins.runtime_parameters import (
    ParameterPlace,
    RuntimeParameter,
    RuntimeParametersMixin,
    assigning_place,
)
from potstill.typing import ChatType
from potstill.utils.docstring import parse_google_docstring
from potstill.utils.fields import ExecutionOnly, is_secret_field, without_execution_fields
from potstill.utils.imports import require
from potstill.utils.pickling import portable_state, restore_state
from potstill.utils.secrets import (
    hide_secret_inputs,
    register_environment_secrets,
    register_secrets_of,
)
from potstill.utils.serialization import _Serializable, dump_model

if TYPE_CHECKING:
    from potstill.llms.async_llm import AsyncLLM

__all__ = ["LLM", "AsyncLLM", "describe_error"]


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
        structured_output: `{"format": "json", "schema": <pydantic model or JSON schema>}`
            or `{"format": "regex", "schema": "<pattern>"}`: every generation is checked
            against it (and constrained by the API where it can); see
            `potstill.llms.structured`.
        structured_output_retries: how many times an answer that fails the structured
            output's check is sent back with the error before the generation is `None`.
        price: your own price per token, which wins over the price table (see
            `token_price`).
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
    price: ExecutionOnly[Optional[RuntimeParameter[Price]]] = Field(
        default=None,
        description="Your own price per token, which wins over the price table: "
        "`Price.per_million(input=..., output=...)` or "
        "`{'input_per_million': ..., 'output_per_million': ...}` (dollars).",
    )

    structured_output: Optional[RuntimeParameter[StructuredOutputType]] = Field(
        default=None,
        description="The structured output format to use across all the generations.",
    )
    structured_output_retries: ExecutionOnly[RuntimeParameter[NonNegativeInt]] = Field(
        default=2,
        description="How many times an answer that does not match `structured_output` is "
        "sent back with the validation error before its generation is `None`.",
    )

    structured_output_formats: ClassVar[tuple[str, ...]] = ()
    """The structured output formats (`"json"`, `"regex"`) the API constrains natively: the
    generation method then takes a `structured_output` argument (see
    `potstill.llms.structured`)."""
    sdk_module: ClassVar[Optional[str]] = None
    """The SDK this LLM needs; `load()` fails with the `pip install` fix when it is missing."""
    sdk_extra: ClassVar[Optional[str]] = None
    """The potstill extra that installs `sdk_module` (defaults to its name)."""
    api_key_env_var: ClassVar[Optional[str]] = None
    """The env var the `api_key` field defaults to; `load()` fails naming it when unset."""

    _loaded: bool = PrivateAttr(default=False)
    _logger: Optional[logging.Logger] = PrivateAttr(default=None)
    _usage: UsageTracker = PrivateAttr(default_factory=UsageTracker)
    # One thread at a time uses the model (see `potstill.llms.local` for the whole story).
    _model_lock: Any = PrivateAttr(default_factory=threading.RLock)
    _constructor_generation_kwargs: dict[str, Any] = PrivateAttr(default_factory=dict)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "load" in cls.__dict__:
            cls.load = marks_loaded(cls.__dict__["load"])  # type: ignore[method-assign]
        for name in ("generate", "agenerate"):
            method = cls.__dict__.get(name)
            if method is not None and not getattr(method, "_potstill_checked", False):
                setattr(cls, name, requires_loaded(method))

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

    @field_validator("structured_output", mode="before")
    @classmethod
    def _check_structured_output(cls, value: Any) -> Any:
        return check_structured_output(value)

    @field_serializer("structured_output")
    def _dump_structured_output(self, value: Optional[dict[str, Any]]) -> Any:
        """A pydantic model given as the schema is dumped as its JSON schema."""
        if value is None:
            return None
        schema = value.get("schema")
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            return {**value, "schema": schema.model_json_schema()}
        return value

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

    # -- pickling (a Ray worker receives its step, and the step's LLM, pickled) ----------

    def __getstate__(self) -> dict[str, Any]:
        """The LLM's configuration, secrets included (they travel in memory only), without
        its runtime state: the copy is unloaded (see `potstill.utils.pickling`)."""
        return portable_state(self, reset=_RUNTIME_FLAGS)

    def __setstate__(self, state: dict[str, Any]) -> None:
        restore_state(self, state)
        register_secrets_of(self)  # redacted from this process's errors and logs too

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
        """Like `generate`, but never raises for a failed input, reuses the answers the
        pipeline step's journal (or the response cache) has, and keeps usage.

        A failed input gets `None` generations with the error kept beside them; the other
        inputs keep their answers (a synchronous LLM's batch that fails as a whole is retried
        input by input).

        Args:
            inputs: the conversations to continue.
            num_generations: how many generations per input.
            row_offset: index of the first input in the dataset, for log messages.
            **kwargs: generation kwargs.

        Returns:
            One `Generations` per input.
        """
        self._ensure_loaded("generate")
        return self._run_batch(inputs, num_generations, row_offset, kwargs)

    async def agenerate_outputs(
        self,
        inputs: list[ChatType],
        num_generations: int = 1,
        *,
        row_offset: int = 0,
        **kwargs: Any,
    ) -> list[Generations]:
        """The async form of `generate_outputs`, with the same arguments and result (a
        synchronous LLM runs in a worker thread)."""
        self._ensure_loaded("generate")
        return await self._arun_batch(inputs, num_generations, row_offset, kwargs)

    def _run_batch(
        self, inputs: list[ChatType], num_generations: Any, row_offset: int, kwargs: dict
    ) -> list[Generations]:
        """Runs one batch (see `potstill.llms.sync_batches`); `AsyncLLM` runs its own."""
        conversations, specs = split_inputs(self, inputs)
        if specs is None:
            return generate_batch(self, inputs, num_generations, row_offset, kwargs)
        return generate_structured_batch(
            self, conversations, specs, num_generations, row_offset, kwargs
        )

    async def _arun_batch(
        self, inputs: list[ChatType], num_generations: Any, row_offset: int, kwargs: dict
    ) -> list[Generations]:
        return await asyncio.to_thread(self._run_batch, inputs, num_generations, row_offset, kwargs)

    def cache_identity(self) -> dict[str, Any]:
        """What identifies this LLM's answers in the response cache: its whole configuration
        (class, model, endpoint, project...) except generation kwargs (part of each request's
        key) and settings that do not change answers (limits, retries, timeouts)."""
        dump = without_execution_fields(self.dump(), type(self))
        dump.pop("generation_kwargs", None)
        return dump

    def structured_output_spec(self) -> Optional[StructuredOutput]:
        """The `structured_output` field, ready to send and check answers against.

        Returns:
            The `StructuredOutput`, or `None` when the field is not set.
        """
        value = self.structured_output
        return StructuredOutput.from_value(value) if value is not None else None

    def native_structured_formats(self) -> tuple[str, ...]:
        """The structured output formats this LLM's API constrains natively (its
        `structured_output_formats`; an LLM whose support depends on its settings
        overrides this).

        Returns:
            Formats among `"json"` and `"regex"`.
        """
        return self.structured_output_formats

    def describe_endpoint(self) -> Optional[str]:
        """The URL or host the LLM sends requests to, named in error messages (`None` for a
        local model). Hosted providers override this.

        Returns:
            The endpoint, or `None`.
        """
        return None

    def token_price(self, batch: Optional[bool] = None) -> Optional[TokenPrice]:
        """What this LLM's tokens cost: its `price` when given; nothing for a model run
        in-process; else the price table's for its provider and model (looked up once).

        Args:
            batch: the price of a provider batch job (`True`) or of an online request
                (`False`); `None` prices the way this LLM sends its requests (batch jobs with
                `use_offline_batch_generation=True`).

        Returns:
            The price, or `None` when there is none ("no price", never a guess): a model the
            table does not list, a provider without per-token prices, or an LLM class of
            no known provider.
        """
        provider = llm_provider(type(self))
        if self.price is None and provider is None:
            return None
        if batch is None:
            batch = bool(getattr(self, "use_offline_batch_generation", False))
        base_url = getattr(self, "base_url", None)
        return resolve_price(
            self.model_name if provider not in LOCAL_PROVIDERS else "",
            provider,
            base_url=base_url if isinstance(base_url, str) else None,
            batch=batch,
            price=self.price,
        )

    @property
    def usage(self) -> UsageSummary:
        """Requests, failures, retries, tokens and their cost, for this instance so far."""
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


# Plain private attributes that describe a loaded LLM's state, not its configuration: a
# pickled copy starts unloaded, and its new limiter is configured on first use.
_RUNTIME_FLAGS = ("_loaded", "_limits")


@functools.cache
def _secret_fields(cls: type[LLM]) -> set[str]:
    return {name for name, field in cls.model_fields.items() if is_secret_field(field)}


def __getattr__(name: str) -> Any:
    # `AsyncLLM` subclasses `LLM`, so its module imports this one; it is still importable
    # from here, where distilabel has it.
    if name == "AsyncLLM":
        from potstill.llms.async_llm import AsyncLLM

        return AsyncLLM
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
