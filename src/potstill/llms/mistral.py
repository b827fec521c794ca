"""`MistralLLM`: Mistral AI's chat completions API through the official `mistralai` SDK."""

from __future__ import annotations

import os
from typing import Any, ClassVar, Dict, List, Optional, Union

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, SecretStr, validate_call

from potstill.llms.base import AsyncLLM
from potstill.llms.typing import GenerateOutput, Generations
from potstill.mixins.runtime_parameters import RuntimeParameter
from potstill.typing import ChatType


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
        default_factory=lambda: os.getenv("MISTRAL_API_KEY"),
        description="The API key to authenticate the requests to the Mistral API.",
    )
    timeout: RuntimeParameter[PositiveFloat] = Field(
        default=120,
        description="The maximum time in seconds to wait for a response from the API.",
    )

    sdk_module: ClassVar[Optional[str]] = "mistralai"
    api_key_env_var: ClassVar[Optional[str]] = "MISTRAL_API_KEY"

    @property
    def model_name(self) -> str:
        """The `model` field."""
        return self.model

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

    async def _aclose_client(self, client: Any) -> None:
        await client.__aexit__(None, None, None)

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

        Returns:
            The completions, with the request's token usage.
        """
        kwargs: dict[str, Any] = {"model": self.model, "messages": input}
        if num_generations != 1:
            kwargs["n"] = num_generations
        optional = {
            "max_tokens": max_new_tokens,
            "temperature": temperature,
            "top_p": top_p,
            "random_seed": random_seed,
            "stop": stop,
            "presence_penalty": presence_penalty,
            "frequency_penalty": frequency_penalty,
            "response_format": response_format,
        }
        kwargs.update({key: value for key, value in optional.items() if value is not None})
        response = await self.client.chat.complete_async(**kwargs)
        choices = sorted(response.choices or [], key=lambda choice: choice.index)
        texts = [_text(choice.message) for choice in choices]
        usage = response.usage
        generations = Generations.from_request(
            texts,
            input_tokens=usage.prompt_tokens if usage else None,
            output_tokens=usage.completion_tokens if usage else None,
        )
        for index, (choice, text) in enumerate(zip(choices, texts)):
            if text is None:
                generations.errors[index] = f"no content (finish_reason={choice.finish_reason})"
        return generations


def _mistral_class() -> Any:
    """`Mistral` from the installed SDK: `mistralai.client` in 3.x, `mistralai` in 1.x."""
    try:
        from mistralai.client import Mistral
    except ImportError:
        from mistralai import Mistral  # type: ignore[attr-defined,no-redef]
    return Mistral


def _text(message: Any) -> Optional[str]:
    """The text of an assistant message: a string, or the text chunks of a chunk list."""
    content = getattr(message, "content", None) if message is not None else None
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [getattr(chunk, "text", None) for chunk in content]
        texts = [part for part in parts if isinstance(part, str)]
        return "".join(texts) if texts else None
    return None


class _NoDebugLog:
    """A `debug_logger` for the Mistral SDK that writes nothing."""

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None:
        """Discards the message."""
