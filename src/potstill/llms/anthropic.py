"""`AnthropicLLM`: Anthropic's Messages API through the official `anthropic` SDK."""

from __future__ import annotations

import os
from typing import Any, ClassVar, List, Optional

from pydantic import Field, PositiveFloat, PositiveInt, SecretStr, validate_call

from potstill.llms.base import AsyncLLM
from potstill.llms.typing import GenerateOutput, Generations
from potstill.mixins.runtime_parameters import RuntimeParameter
from potstill.typing import ChatType


class AnthropicLLM(AsyncLLM):
    """An LLM served by Anthropic's Messages API (Claude models).

    The system prompt (every `system` message, joined) is sent as the top-level `system`
    field; the other messages keep their `user`/`assistant` roles. The API has no `n`, so
    `num_generations` sends that many requests in parallel. Token usage comes from the
    response's `usage.input_tokens`/`usage.output_tokens`. Any model name is accepted.

    Attributes:
        model: the model name, e.g. `claude-sonnet-4-6`.
        base_url: the API's base URL; defaults to `$ANTHROPIC_BASE_URL`, else Anthropic's.
        api_key: the API key; defaults to `$ANTHROPIC_API_KEY`. It is sent as `x-api-key`.
        timeout: seconds to wait for a response before giving up on a request.
        http_client: an `httpx2.AsyncClient` for the SDK to use (never serialized); by
            default the SDK's aiohttp transport when available.

    Examples:
        ```python
        from potstill.llms import AnthropicLLM

        llm = AnthropicLLM(model="claude-sonnet-4-6")
        llm.load()
        llm.generate(inputs=[[{"role": "user", "content": "Hello!"}]])
        ```
    """

    model: str
    base_url: Optional[RuntimeParameter[str]] = Field(
        default_factory=lambda: os.getenv("ANTHROPIC_BASE_URL", "https://api.anthropic.com"),
        description="The base URL to use for the Anthropic API.",
    )
    api_key: Optional[RuntimeParameter[SecretStr]] = Field(
        default_factory=lambda: os.getenv("ANTHROPIC_API_KEY"),
        description="The API key to authenticate the requests to the Anthropic API.",
    )
    timeout: RuntimeParameter[PositiveFloat] = Field(
        default=600.0,
        description="The maximum time in seconds to wait for a response from the API.",
    )
    http_client: Optional[Any] = Field(default=None, exclude=True, repr=False)

    sdk_module: ClassVar[Optional[str]] = "anthropic"
    api_key_env_var: ClassVar[Optional[str]] = "ANTHROPIC_API_KEY"

    @property
    def model_name(self) -> str:
        """The `model` field."""
        return self.model

    def _create_client(self) -> Any:
        from anthropic import AsyncAnthropic, omit

        key = self._secret()
        return AsyncAnthropic(
            api_key=key,
            base_url=self.base_url,
            timeout=self.timeout,
            max_retries=0,  # retries happen in AsyncLLM, honouring Retry-After
            # anthropic 2.x sends `api_key` as a bearer token; Anthropic's API
            # authenticates API keys with the `x-api-key` header.
            default_headers={"x-api-key": key, "Authorization": omit},  # type: ignore[dict-item]
            http_client=self.http_client or _http_client(),
        )

    @validate_call
    async def agenerate(
        self,
        input: ChatType,
        max_tokens: PositiveInt = 128,
        stop_sequences: Optional[List[str]] = None,
        temperature: Optional[float] = 1.0,
        top_p: Optional[float] = None,
        top_k: Optional[PositiveInt] = None,
    ) -> GenerateOutput:
        """Generates one message for one conversation.

        Args:
            input: the conversation; `system` messages become the top-level `system` field.
            max_tokens: the maximum number of tokens to generate.
            stop_sequences: sequences where the model stops generating.
            temperature: the sampling temperature (0 to 1); `None` leaves it to the API.
            top_p: the nucleus sampling probability mass; `None` leaves it to the API.
            top_k: sample only from the `top_k` most likely tokens; `None` leaves it
                to the API.

        Returns:
            The generated text, with the request's token usage.
        """
        system, messages = _split_system(input)
        body: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": max_tokens}
        if system is not None:
            body["system"] = system
        if stop_sequences is not None:
            body["stop_sequences"] = stop_sequences
        # The 2.x SDK no longer declares the sampling parameters; they travel as extra body
        # fields, exactly as the API names them.
        sampling = {"temperature": temperature, "top_p": top_p, "top_k": top_k}
        extra = {name: value for name, value in sampling.items() if value is not None}
        message = await self.client.messages.create(**body, extra_body=extra or None)
        return _generations(message)


def _split_system(input: ChatType) -> tuple[Optional[str], list[dict[str, Any]]]:
    """Separates the system prompt from the conversation without touching `input`."""
    system = [message["content"] for message in input if message["role"] == "system"]
    messages = [
        {"role": message["role"], "content": message["content"]}
        for message in input
        if message["role"] != "system"
    ]
    return ("\n\n".join(system) if system else None), messages


def _generations(message: Any) -> Generations:
    texts = [block.text for block in message.content or [] if block.type == "text"]
    text = "".join(texts) if texts else None
    usage = message.usage
    generations = Generations.from_request(
        [text or None],
        input_tokens=getattr(usage, "input_tokens", None),
        output_tokens=getattr(usage, "output_tokens", None),
    )
    if not text:
        generations.errors[0] = f"no text content (stop_reason={message.stop_reason})"
    return generations


def _http_client() -> Any:
    """The SDK's aiohttp transport when aiohttp is installed, else the SDK's default."""
    try:
        from anthropic import DefaultAioHttpClient

        return DefaultAioHttpClient()
    except (ImportError, RuntimeError):
        return None
