"""`GroqLLM`: Groq's chat completions API through the official `groq` SDK."""

from __future__ import annotations

import os
from typing import Any, ClassVar, List, Optional, Union

from pydantic import Field, NonNegativeInt, PositiveFloat, SecretStr, validate_call

from potstill.llms.base import AsyncLLM
from potstill.llms.openai import _generations, post_json
from potstill.llms.typing import GenerateOutput
from potstill.mixins.runtime_parameters import RuntimeParameter
from potstill.typing import ChatType

_CHAT_PATH = "/openai/v1/chat/completions"


class GroqLLM(AsyncLLM):
    """An LLM served by Groq.

    Groq accepts only `n=1`, so `num_generations` sends that many requests in parallel
    (bounded by `max_concurrent_requests`). Token usage comes from the response's `usage`.

    Attributes:
        model: the model name, e.g. `llama-3.1-8b-instant`.
        base_url: the API's base URL; defaults to `$GROQ_BASE_URL`, else
            `https://api.groq.com` (the SDK adds `/openai/v1/...`).
        api_key: the API key; defaults to `$GROQ_API_KEY`.
        max_retries: retries per request after the first attempt (default 2, as distilabel).
        timeout: seconds to wait for a response before giving up on a request.

    Examples:
        ```python
        from potstill.llms import GroqLLM

        llm = GroqLLM(model="llama-3.1-8b-instant")
        llm.load()
        llm.generate(inputs=[[{"role": "user", "content": "Hello!"}]])
        ```
    """

    model: str
    base_url: Optional[RuntimeParameter[str]] = Field(
        default_factory=lambda: os.getenv("GROQ_BASE_URL", "https://api.groq.com"),
        description="The base URL to use for the Groq API requests.",
    )
    api_key: Optional[RuntimeParameter[SecretStr]] = Field(
        default_factory=lambda: os.getenv("GROQ_API_KEY"),
        description="The API key to authenticate the requests to the Groq API.",
    )
    max_retries: RuntimeParameter[NonNegativeInt] = Field(
        default=2,
        description="The maximum number of times to retry the request to the API before "
        "failing (on rate limits, server errors, timeouts and connection errors).",
    )
    timeout: RuntimeParameter[PositiveFloat] = Field(
        default=120,
        description="The maximum time in seconds to wait for a response from the API.",
    )

    sdk_module: ClassVar[Optional[str]] = "groq"
    api_key_env_var: ClassVar[Optional[str]] = "GROQ_API_KEY"

    @property
    def model_name(self) -> str:
        """The `model` field."""
        return self.model

    def _create_client(self) -> Any:
        from groq import AsyncGroq

        return AsyncGroq(
            base_url=self.base_url,
            api_key=self._secret(),
            max_retries=0,  # retries happen in AsyncLLM, honouring Retry-After
            timeout=self.timeout,
            http_client=_http_client(),
        )

    @validate_call
    async def agenerate(
        self,
        input: ChatType,
        seed: Optional[int] = None,
        max_new_tokens: NonNegativeInt = 128,
        temperature: float = 1.0,
        top_p: float = 1.0,
        stop: Optional[Union[str, List[str]]] = None,
    ) -> GenerateOutput:
        """Generates one completion for one conversation.

        Args:
            input: the conversation.
            seed: a seed for best-effort deterministic sampling.
            max_new_tokens: the maximum number of tokens to generate (sent as `max_tokens`).
            temperature: the sampling temperature.
            top_p: the nucleus sampling probability mass.
            stop: up to 4 sequences where the API stops generating.

        Returns:
            The completion, with the request's token usage.
        """
        body: dict[str, Any] = {
            "messages": input,
            "model": self.model,
            "max_tokens": max_new_tokens,
            "temperature": temperature,
            "top_p": top_p,
        }
        if seed is not None:
            body["seed"] = seed
        if stop is not None:
            body["stop"] = stop
        return _generations(await post_json(self.client, _CHAT_PATH, body), logprobs=False)


def _http_client() -> Any:
    """The SDK's aiohttp transport when its `aiohttp` extra is installed, else the default."""
    try:
        from groq import DefaultAioHttpClient

        return DefaultAioHttpClient()
    except (ImportError, RuntimeError):
        return None
