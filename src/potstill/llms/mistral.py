"""`MistralLLM`: Mistral AI's chat completions API through the official `mistralai` SDK."""

from __future__ import annotations

import os
from typing import Any, ClassVar, Dict, List, Optional, Union

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, SecretStr, validate_call

from potstill.llms.base import AsyncLLM
from potstill.llms.hosted import passed_kwargs, timeout_field
from potstill.llms.openai_format import json_schema_response_format, parse_chat_completion
from potstill.llms.structured import StructuredOutput
from potstill.llms.typing import GenerateOutput
from potstill.mixins.runtime_parameters import RuntimeParameter
from potstill.typing import ChatType
from potstill.utils.fields import ExecutionOnly

_API_KEY_ENV_VAR = "MISTRAL_API_KEY"


class MistralLLM(AsyncLLM):
    """An LLM served by Mistral AI (La Plateforme).

    `num_generations` uses the API's native `n` (the prompt is billed once). Token usage
    comes from the response's `usage`. The SDK's own retries are off: `AsyncLLM` retries.

    Attributes:
        model: the model name, e.g. `mistral-small-latest`.
        endpoint: the API's server URL (the SDK adds `/v1/chat/completions`).
        api_key: the API key; defaults to `$MISTRAL_API_KEY`.
        timeout: seconds to wait for a response before giving up on a request.

    Examples:
        ```python
        from potstill.llms import MistralLLM

        llm = MistralLLM(model="mistral-small-latest")
        llm.load()
        llm.generate(inputs=[[{"role": "user", "content": "Hello!"}]])
        ```
    """

    model: str
    endpoint: RuntimeParameter[str] = Field(
        default="https://api.mistral.ai",
        description="The server URL of the Mistral API (the SDK's `server_url`).",
    )
    api_key: Optional[RuntimeParameter[SecretStr]] = Field(
        default_factory=lambda: os.getenv(_API_KEY_ENV_VAR),
        description="The API key to authenticate the requests to the Mistral API.",
    )
    timeout: ExecutionOnly[RuntimeParameter[PositiveFloat]] = timeout_field()

    structured_output_formats: ClassVar[tuple[str, ...]] = ("json",)
    sdk_module: ClassVar[Optional[str]] = "mistralai"
    api_key_env_var: ClassVar[Optional[str]] = _API_KEY_ENV_VAR

    @property
    def model_name(self) -> str:
        """The `model` field."""
        return self.model

    def describe_endpoint(self) -> Optional[str]:
        """The `endpoint` field, named in error messages.

        Returns:
            The server URL.
        """
        return self.endpoint

    def _create_client(self) -> Any:
        return _mistral_class()(
            api_key=self._secret(),
            server_url=self.endpoint,
            retry_config=None,  # no SDK retries: AsyncLLM retries, honouring Retry-After
            timeout_ms=round(self.timeout * 1000),
            # The SDK's debug logger (on with $MISTRAL_DEBUG) writes request headers,
            # the API key included; keep it off.
            debug_logger=_NoDebugLog(),
        )

    @validate_call
    async def agenerate(
        self,
        input: ChatType,
        num_generations: PositiveInt = 1,
        max_new_tokens: Optional[NonNegativeInt] = None,
        temperature: Optional[float] = None,
        top_p: Optional[float] = None,
        random_seed: Optional[NonNegativeInt] = None,
        stop: Optional[Union[str, List[str]]] = None,
        presence_penalty: Optional[float] = None,
        frequency_penalty: Optional[float] = None,
        response_format: Optional[Dict[str, Any]] = None,
        structured_output: Optional[StructuredOutput] = None,
    ) -> GenerateOutput:
        """Generates `num_generations` completions for one conversation.

        Args:
            input: the conversation.
            num_generations: the number of completions (sent as `n`).
            max_new_tokens: the maximum number of tokens to generate (sent as `max_tokens`);
                the model's limit when `None`.
            temperature: the sampling temperature; the model's default when `None`.
            top_p: the nucleus sampling probability mass; the model's default when `None`.
            random_seed: a seed for deterministic sampling.
            stop: sequences where the API stops generating.
            presence_penalty: penalizes tokens that already appeared.
            frequency_penalty: penalizes tokens by how often they already appeared.
            response_format: e.g. `{"type": "json_object"}` for JSON mode, or
                `{"type": "json_schema", "json_schema": {...}}`.
            structured_output: the request's structured output (set by potstill), sent as
                a strict JSON schema `response_format`.

        Returns:
            The completions, with the request's token usage.
        """
        request = build_request(self.model, input, num_generations, **passed_kwargs(locals()))
        response = await self.client.chat.complete_async(**request)
        return parse_chat_completion(response.model_dump())


def build_request(
    model: str, input: ChatType, num_generations: int = 1, **kwargs: Any
) -> dict[str, Any]:
    """The keyword arguments of a `chat.complete_async` call.

    Args:
        model: the Mistral model, e.g. `mistral-small-latest`.
        input: the conversation, whose messages the SDK validates and sends.
        num_generations: sent as `n`, unless it is 1.
        **kwargs: `MistralLLM.agenerate`'s generation kwargs: `max_new_tokens` is sent as
            `max_tokens`, a `structured_output` as a strict JSON schema `response_format`;
            kwargs that are `None` are left out, so the model's defaults apply.

    Returns:
        The arguments.
    """
    request: dict[str, Any] = {"model": model, "messages": input}
    if num_generations != 1:
        request["n"] = num_generations
    for name, value in kwargs.items():
        if value is None:
            continue
        if name == "structured_output":
            request["response_format"] = json_schema_response_format(value)
        else:
            request["max_tokens" if name == "max_new_tokens" else name] = value
    return request


def _mistral_class() -> Any:
    """`Mistral` from the installed SDK: `mistralai.client` in 3.x, `mistralai` in 1.x."""
    try:
        from mistralai.client import Mistral
    except ImportError:
        from mistralai import Mistral  # type: ignore[attr-defined,no-redef]
    return Mistral


class _NoDebugLog:
    """A `debug_logger` for the Mistral SDK that writes nothing."""

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None:
        """Discards the message."""
