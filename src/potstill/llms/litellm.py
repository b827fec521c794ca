"""`LiteLLM`: any provider LiteLLM supports, through `litellm.acompletion`."""

from __future__ import annotations

from typing import Any, ClassVar, Dict, List, Optional, Union

from pydantic import (
    Field,
    PositiveFloat,
    PositiveInt,
    PrivateAttr,
    SecretStr,
    model_validator,
    validate_call,
)

from potstill.errors import PotstillUserError
from potstill.llms.base import AsyncLLM
from potstill.llms.hosted import passed_kwargs, timeout_field
from potstill.llms.openai_format import json_schema_response_format, parse_chat_completion
from potstill.llms.structured import StructuredOutput
from potstill.llms.typing import GenerateOutput
from potstill.mixins.runtime_parameters import RuntimeParameter
from potstill.typing import ChatType
from potstill.utils.fields import ExecutionOnly
from potstill.utils.imports import require

# Generation kwargs that make LiteLLM answer without the provider's credentials.
_NO_CREDENTIALS_NEEDED = ("mock_response", "model_list")


class LiteLLM(AsyncLLM):
    """Any model LiteLLM can route to (`openai/...`, `anthropic/...`, `ollama/...`, ...).

    `num_generations` is sent as `n`; when the provider returns fewer choices (it ignores
    `n`, or LiteLLM dropped it), `AsyncLLM` requests the rest. LiteLLM's own retries are
    off (`num_retries=0`): `AsyncLLM` retries. `litellm` is imported by `load()`, not at
    import time (it takes seconds).

    Attributes:
        model: the LiteLLM model string, e.g. `gpt-4o-mini` or `openai/<name>` for an
            OpenAI-compatible server.
        verbose: let LiteLLM print its debug information and log at DEBUG level.
        api_key: the provider's API key; when unset, LiteLLM reads the provider's env var
            (e.g. `OPENAI_API_KEY`, `ANTHROPIC_API_KEY`). distilabel took it as a generation
            kwarg: an `api_key` in `generation_kwargs` (constructor or `run(params=...)`) is
            moved here, so it stays a secret (never dumped, logged or shown).
        api_base: the provider's base URL, for self-hosted or OpenAI-compatible servers.
        timeout: seconds to wait for a response before giving up on a request.

    Examples:
        ```python
        from potstill.llms import LiteLLM

        llm = LiteLLM(model="gpt-4o-mini")
        llm.load()
        llm.generate(inputs=[[{"role": "user", "content": "Hello!"}]])
        ```
    """

    model: str
    verbose: RuntimeParameter[bool] = Field(
        default=False,
        description="Whether to let LiteLLM print its debug information and debug logs.",
    )
    api_key: Optional[RuntimeParameter[SecretStr]] = Field(
        default=None,
        description="The API key of the model's provider; by default LiteLLM reads the "
        "provider's environment variable.",
    )
    api_base: Optional[RuntimeParameter[str]] = Field(
        default=None,
        description="The base URL of the provider's API, e.g. for an OpenAI-compatible server.",
    )
    timeout: ExecutionOnly[RuntimeParameter[PositiveFloat]] = timeout_field(600.0)

    structured_output_formats: ClassVar[tuple[str, ...]] = ("json",)
    sdk_module: ClassVar[Optional[str]] = "litellm"

    _drop_params: bool = PrivateAttr(default=False)

    @model_validator(mode="before")
    @classmethod
    def _key_out_of_generation_kwargs(cls, data: Any) -> Any:
        if isinstance(data, dict):
            kwargs = data.get("generation_kwargs")
            if isinstance(kwargs, dict) and "api_key" in kwargs:
                rest, key = _split_key(kwargs)
                data = {**data, "generation_kwargs": rest}
                if key is not None:
                    data["api_key"] = key
        return data

    def _assign_runtime_parameter(self, name: str, value: Any, where: str) -> None:
        if name == "generation_kwargs" and isinstance(value, dict) and "api_key" in value:
            value, key = _split_key(value)
            if key is not None:
                super()._assign_runtime_parameter("api_key", key, where)
        super()._assign_runtime_parameter(name, value, where)

    @property
    def model_name(self) -> str:
        """The `model` field."""
        return self.model

    def describe_endpoint(self) -> Optional[str]:
        """The `api_base` field, named in error messages.

        Returns:
            The provider's base URL, or `None` when LiteLLM picks it.
        """
        return self.api_base

    def load(self) -> None:
        """Imports `litellm`, sets its output verbosity and checks the provider's key.

        Raises:
            PotstillUserError: naming the env var when the provider's API key is missing.
        """
        litellm = require("litellm", "litellm")
        # Process-wide: LiteLLM prints "Give Feedback / Get Help" to stdout on every error
        # unless this is set (its own Router sets it too).
        litellm.suppress_debug_info = not self.verbose
        if self.verbose:
            turn_on_debug = getattr(litellm, "_turn_on_debug", None)  # LiteLLM's documented switch
            if turn_on_debug is not None:
                turn_on_debug()
            else:  # older LiteLLM
                litellm.set_verbose = True
        self._check_credentials(litellm)
        super().load()

    def _check_credentials(self, litellm: Any) -> None:
        kwargs = self.generation_kwargs or {}
        if self.api_key is not None or any(kwargs.get(name) for name in _NO_CREDENTIALS_NEEDED):
            return
        try:
            report = litellm.validate_environment(
                model=self.model,
                api_base=kwargs.get("api_base") or self.api_base,
                api_version=kwargs.get("api_version"),
            )
        except Exception:  # a model LiteLLM cannot place: let the request tell
            return
        missing = [
            name
            for name in report.get("missing_keys") or []
            if "KEY" in name.upper() or "TOKEN" in name.upper()
        ]
        if missing:
            names = " or ".join(f"`{name}`" for name in missing)
            raise PotstillUserError(
                f"To use `{type(self).__name__}` with model {self.model!r} an API key must be "
                f"provided via `api_key` attribute or runtime parameter, or set the "
                f"environment variable {names}."
            )

    @validate_call
    async def agenerate(
        self,
        input: ChatType,
        num_generations: PositiveInt = 1,
        functions: Optional[List[Dict[str, Any]]] = None,
        function_call: Optional[Union[str, Dict[str, Any]]] = None,
        temperature: Optional[float] = 1.0,
        top_p: Optional[float] = 1.0,
        stop: Optional[Union[str, List[str]]] = None,
        max_tokens: Optional[PositiveInt] = None,
        presence_penalty: Optional[float] = None,
        frequency_penalty: Optional[float] = None,
        logit_bias: Optional[Dict[str, float]] = None,
        user: Optional[str] = None,
        metadata: Optional[Dict[str, Any]] = None,
        api_base: Optional[str] = None,
        api_version: Optional[str] = None,
        model_list: Optional[List[Dict[str, Any]]] = None,
        mock_response: Optional[str] = None,
        force_timeout: Optional[PositiveFloat] = None,
        custom_llm_provider: Optional[str] = None,
        api_key: Optional[SecretStr] = None,
        seed: Optional[int] = None,
        response_format: Optional[Dict[str, Any]] = None,
        structured_output: Optional[StructuredOutput] = None,
    ) -> GenerateOutput:
        """Generates `num_generations` completions for one conversation.

        Args:
            input: the conversation.
            num_generations: the number of completions (sent as `n`; missing ones are
                requested separately).
            functions: function definitions the model may call (legacy OpenAI `functions`).
            function_call: how the model calls `functions`.
            temperature: the sampling temperature.
            top_p: the nucleus sampling probability mass.
            stop: sequences where the API stops generating.
            max_tokens: the maximum number of tokens to generate.
            presence_penalty: penalizes tokens that already appeared.
            frequency_penalty: penalizes tokens by how often they already appeared.
            logit_bias: token id -> bias added to its logit.
            user: an end-user id for the provider's abuse monitoring.
            metadata: extra data attached to the call for LiteLLM's logging callbacks.
            api_base: the provider's base URL for this call (overrides the `api_base` field).
            api_version: the provider's API version (e.g. for Azure).
            model_list: a list of deployments (api bases, keys, ...) LiteLLM picks from.
            mock_response: a canned answer LiteLLM returns without calling the provider.
            force_timeout: seconds before a call times out (overrides the `timeout` field).
            custom_llm_provider: the provider, when the model string does not say it.
            api_key: the provider's API key for this call (overrides the `api_key` field).
                Best given as the `api_key` field or the provider's env var; in
                `generation_kwargs` it is moved to the field, so it is never dumped.
            seed: a seed for best-effort deterministic sampling.
            response_format: e.g. `{"type": "json_object"}` for JSON mode.
            structured_output: the request's structured output (set by potstill), passed
                to LiteLLM as a strict JSON schema `response_format`, which it translates
                for the model's provider.

        Returns:
            The completions, with the call's token usage.
        """
        kwargs = passed_kwargs(locals())  # first: `locals()` holds only the arguments
        import litellm

        request = build_request(self.api_base, self._secret(), self.timeout, **kwargs)
        response = await self._acompletion(litellm, input, num_generations, request)
        return parse_chat_completion(response.model_dump())

    async def _acompletion(
        self, litellm: Any, input: ChatType, n: int, request: dict[str, Any]
    ) -> Any:
        """One `litellm.acompletion` call; parameters the provider rejects are dropped
        (for this LLM, from then on) and the call is made again."""
        kwargs = {**request, "n": n} if n > 1 else dict(request)
        if self._drop_params:
            kwargs["drop_params"] = True
        try:
            return await litellm.acompletion(model=self.model, messages=input, **kwargs)
        except litellm.UnsupportedParamsError as error:
            if self._drop_params:
                raise
            self.logger.warning(
                "%s does not support some parameters, so they are dropped from now on: %s",
                self.model,
                error,
            )
            self._drop_params = True
            kwargs["drop_params"] = True
            return await litellm.acompletion(model=self.model, messages=input, **kwargs)


def build_request(
    api_base: Optional[str], api_key: Optional[str], timeout: float, /, **kwargs: Any
) -> dict[str, Any]:
    """The keyword arguments of a `litellm.acompletion` call, besides the model, the
    messages and `n`.

    Args:
        api_base: the LLM's `api_base`, for a call without its own.
        api_key: the LLM's API key (revealed), for a call without its own.
        timeout: the LLM's `timeout`, for a call without `force_timeout`.
        **kwargs: `LiteLLM.agenerate`'s generation kwargs; those that are `None` are left
            out; a `structured_output` is sent as a strict JSON schema `response_format`.

    Returns:
        The arguments, with LiteLLM's own retries off (`AsyncLLM` retries).
    """
    key = kwargs.get("api_key")
    structured = kwargs.get("structured_output")
    given = {
        **kwargs,
        "api_base": kwargs.get("api_base") or api_base,
        "api_key": key.get_secret_value() if key is not None else api_key,
        "structured_output": None,
    }
    if structured is not None:
        given["response_format"] = json_schema_response_format(structured)
    request = {
        name: value
        for name, value in given.items()
        if value is not None and name != "force_timeout"
    }
    request["timeout"] = kwargs.get("force_timeout") or timeout
    request["num_retries"] = 0  # retries happen in AsyncLLM, honouring Retry-After
    return request


def _split_key(kwargs: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """`generation_kwargs` without `api_key`, and the key (distilabel passed it there)."""
    rest = {name: value for name, value in kwargs.items() if name != "api_key"}
    return rest, kwargs["api_key"]
