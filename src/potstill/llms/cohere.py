"""`CohereLLM`: Cohere's Chat API (v2) through the official `cohere` SDK."""

from __future__ import annotations

from typing import Any, ClassVar, List, Optional

from pydantic import Field, PositiveInt, validate_call

from potstill.llms.hosted import HostedLLM, passed_kwargs
from potstill.llms.structured import StructuredOutput
from potstill.llms.typing import GenerateOutput, Generations
from potstill.mixins.runtime_parameters import RuntimeParameter
from potstill.typing import ChatType


class CohereLLM(HostedLLM):
    """An LLM served by Cohere's Chat API.

    Requests go to the v2 Chat API (`AsyncClientV2.chat`), which the current SDK uses:
    the conversation is sent as `messages` with the roles `system`, `user` and
    `assistant`, so the system prompt is a `system` message (v1's `preamble`). The API
    has no `n`, so `num_generations` sends that many requests in parallel. Token usage
    comes from the response's `usage.tokens` (or `usage.billed_units`). An empty answer
    is `None`.

    Attributes:
        model: the model name, e.g. `command-r-plus`.
        base_url: the API's base URL; defaults to `$COHERE_BASE_URL`, else Cohere's.
        api_key: the API key; defaults to `$COHERE_API_KEY`.
        timeout: seconds to wait for a response before giving up on a request.
        client_name: sent as `X-Client-Name`, to identify the calling application.

    Examples:
        ```python
        from potstill.llms import CohereLLM

        llm = CohereLLM(model="command-r-plus")
        llm.load()
        llm.generate(inputs=[[{"role": "user", "content": "Hello!"}]])
        ```
    """

    client_name: RuntimeParameter[str] = Field(
        default="potstill",
        description="The name of the client to use for the API requests.",
    )

    structured_output_formats: ClassVar[tuple[str, ...]] = ("json",)
    sdk_module: ClassVar[Optional[str]] = "cohere"
    api_key_env_var: ClassVar[Optional[str]] = "COHERE_API_KEY"
    base_url_env_var: ClassVar[Optional[str]] = "COHERE_BASE_URL"
    default_base_url: ClassVar[Optional[str]] = "https://api.cohere.com"

    def _create_client(self) -> Any:
        from cohere import AsyncClientV2

        return AsyncClientV2(**self._client_options(), client_name=self.client_name)

    @validate_call
    async def agenerate(
        self,
        input: ChatType,
        temperature: Optional[float] = None,
        max_tokens: Optional[PositiveInt] = None,
        k: Optional[int] = None,
        p: Optional[float] = None,
        seed: Optional[int] = None,
        stop_sequences: Optional[List[str]] = None,
        frequency_penalty: Optional[float] = None,
        presence_penalty: Optional[float] = None,
        structured_output: Optional[StructuredOutput] = None,
    ) -> GenerateOutput:
        """Generates one answer for one conversation.

        Every kwarg left to `None` is not sent, so the API's default applies.

        Args:
            input: the conversation (`system`, `user` and `assistant` messages).
            temperature: the sampling temperature.
            max_tokens: the maximum number of tokens to generate.
            k: sample only from the `k` most likely tokens (0 to 500).
            p: the nucleus sampling probability mass (0.01 to 0.99).
            seed: a seed for best-effort deterministic sampling.
            stop_sequences: up to 5 sequences where the model stops generating.
            frequency_penalty: penalizes tokens by how often they already appeared.
            presence_penalty: penalizes tokens that already appeared.
            structured_output: the request's structured output (set by potstill), sent as
                `response_format={"type": "json_object", "json_schema": ...}`.

        Returns:
            The generated text, with the request's token usage.
        """
        request = build_request(self.model, input, **passed_kwargs(locals()))
        return parse_response(await self.client.chat(**request))


def build_request(model: str, input: ChatType, **kwargs: Any) -> dict[str, Any]:
    """The keyword arguments of a v2 `chat` call.

    Args:
        model: the Cohere model, e.g. `command-r-plus`.
        input: the conversation; the role and content of each message (`system`, `user`,
            `assistant`) make the v2 `messages`.
        **kwargs: `CohereLLM.agenerate`'s generation kwargs; those that are `None` are
            left out, so the API's defaults apply. A `structured_output` becomes the
            JSON-object `response_format` with its JSON schema.

    Returns:
        The arguments.
    """
    messages = [{"role": message["role"], "content": message["content"]} for message in input]
    request: dict[str, Any] = {"model": model, "messages": messages}
    request.update({name: value for name, value in kwargs.items() if value is not None})
    structured = request.pop("structured_output", None)
    if structured is not None:
        request["response_format"] = {"type": "json_object", "json_schema": structured.schema}
    return request


def parse_response(response: Any) -> Generations:
    """The generation of a v2 chat response: its text blocks joined, `None` when empty.

    Args:
        response: the SDK's `V2ChatResponse`.

    Returns:
        The generation, with the token usage from `usage.tokens` (else `usage.billed_units`).
    """
    message = response.message
    blocks = (message.content or []) if message is not None else []
    text = "".join(block.text for block in blocks if getattr(block, "type", None) == "text")
    usage = response.usage
    counts = (usage.tokens or usage.billed_units) if usage is not None else None
    generations = Generations.from_request(
        [text or None],
        input_tokens=_int(getattr(counts, "input_tokens", None)),
        output_tokens=_int(getattr(counts, "output_tokens", None)),
    )
    if not text:
        generations.errors[0] = f"empty answer (finish_reason={response.finish_reason})"
    return generations


def _int(value: Optional[float]) -> Optional[int]:
    return int(value) if value is not None else None
