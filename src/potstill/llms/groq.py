"""`GroqLLM`: Groq's chat completions API through the official `groq` SDK."""

from __future__ import annotations

from typing import Any, ClassVar, List, Optional, Union

from pydantic import Field, NonNegativeInt, validate_call

from potstill.llms.hosted import HostedLLM, passed_kwargs
from potstill.llms.openai_format import json_schema_response_format, parse_chat_completion
from potstill.llms.structured import StructuredOutput
from potstill.llms.typing import GenerateOutput
from potstill.mixins.runtime_parameters import RuntimeParameter
from potstill.typing import ChatType
from potstill.utils.fields import ExecutionOnly

_CHAT_PATH = "/openai/v1/chat/completions"


class GroqLLM(HostedLLM):
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

    max_retries: ExecutionOnly[RuntimeParameter[NonNegativeInt]] = Field(
        default=2,
        description="The maximum number of times to retry the request to the API before "
        "failing (on rate limits, server errors, timeouts and connection errors).",
    )

    structured_output_formats: ClassVar[tuple[str, ...]] = ("json",)
    sdk_module: ClassVar[Optional[str]] = "groq"
    api_key_env_var: ClassVar[Optional[str]] = "GROQ_API_KEY"
    base_url_env_var: ClassVar[Optional[str]] = "GROQ_BASE_URL"
    default_base_url: ClassVar[Optional[str]] = "https://api.groq.com"

    def _create_client(self) -> Any:
        from groq import AsyncGroq

        return AsyncGroq(**self._client_options(), http_client=self._http_client())

    @validate_call
    async def agenerate(
        self,
        input: ChatType,
        seed: Optional[int] = None,
        max_new_tokens: NonNegativeInt = 128,
        temperature: float = 1.0,
        top_p: float = 1.0,
        stop: Optional[Union[str, List[str]]] = None,
        structured_output: Optional[StructuredOutput] = None,
    ) -> GenerateOutput:
        """Generates one completion for one conversation.

        Args:
            input: the conversation.
            seed: a seed for best-effort deterministic sampling.
            max_new_tokens: the maximum number of tokens to generate (sent as `max_tokens`).
            temperature: the sampling temperature.
            top_p: the nucleus sampling probability mass.
            stop: up to 4 sequences where the API stops generating.
            structured_output: the request's structured output (set by potstill), sent as
                a JSON schema `response_format` (not strict: only some Groq models take
                `strict`).

        Returns:
            The completion, with the request's token usage.
        """
        body = build_request(self.model, input, **passed_kwargs(locals()))
        return parse_chat_completion(await self._post_json(_CHAT_PATH, body))


def build_request(model: str, input: ChatType, **kwargs: Any) -> dict[str, Any]:
    """The JSON body of a Groq chat completions request (one choice: Groq takes only `n=1`).

    Args:
        model: the model name.
        input: the conversation, sent as `messages` unchanged.
        **kwargs: `GroqLLM.agenerate`'s generation kwargs: `max_new_tokens` is sent as
            `max_tokens`, a `structured_output` as a JSON schema `response_format`; kwargs
            that are `None` are left out.

    Returns:
        The body.
    """
    body: dict[str, Any] = {"messages": input, "model": model}
    for name, value in kwargs.items():
        if value is None:
            continue
        if name == "structured_output":
            body["response_format"] = json_schema_response_format(value, strict=False)
        else:
            body["max_tokens" if name == "max_new_tokens" else name] = value
    return body
