"""`AnthropicLLM`: Anthropic's Messages API through the official `anthropic` SDK."""

from __future__ import annotations

import functools
import json
from typing import Any, ClassVar, List, Optional

from pydantic import Field, PositiveFloat, PositiveInt, validate_call

from potstill.llms.batch_jobs import JobAdapter, JobRequest, JobState, OfflineBatchGeneration
from potstill.llms.hosted import HostedLLM, passed_kwargs, timeout_field
from potstill.llms.structured import StructuredOutput
from potstill.llms.typing import GenerateOutput, Generations
from potstill.mixins.runtime_parameters import RuntimeParameter
from potstill.typing import ChatType
from potstill.utils.fields import ExecutionOnly


class AnthropicLLM(OfflineBatchGeneration, HostedLLM):
    """An LLM served by Anthropic's Messages API (Claude models).

    The system prompt (every `system` message, joined) is sent as the top-level `system`
    field; the other messages keep their `user`/`assistant` roles. The API has no `n`, so
    `num_generations` sends that many requests in parallel. Token usage comes from the
    response's `usage.input_tokens`/`usage.output_tokens`. Any model name is accepted.

    Attributes:
        model: the model name, e.g. `claude-sonnet-4-6`.
        base_url: the API's base URL; defaults to `$ANTHROPIC_BASE_URL`, else
            `https://api.anthropic.com`.
        api_key: the API key; defaults to `$ANTHROPIC_API_KEY`. It is sent as `x-api-key`.
        timeout: seconds to wait for a response before giving up on a request.
        http_client: an `httpx2.AsyncClient` for the SDK to use (never serialized); by
            default the SDK's aiohttp transport when available.
        use_offline_batch_generation: send each batch's requests as a Message Batch and wait
            for the answers (see the guide's "Provider batch APIs").
        offline_batch_generation_block_until_done: seconds between two checks of a pending
            Message Batch (30 when not set).

    Examples:
        ```python
        from potstill.llms import AnthropicLLM

        llm = AnthropicLLM(model="claude-sonnet-4-6")
        llm.load()
        llm.generate(inputs=[[{"role": "user", "content": "Hello!"}]])
        ```
    """

    timeout: ExecutionOnly[RuntimeParameter[PositiveFloat]] = timeout_field(600.0)
    http_client: Optional[Any] = Field(default=None, exclude=True, repr=False)

    structured_output_formats: ClassVar[tuple[str, ...]] = ("json",)
    sdk_module: ClassVar[Optional[str]] = "anthropic"
    api_key_env_var: ClassVar[Optional[str]] = "ANTHROPIC_API_KEY"
    base_url_env_var: ClassVar[Optional[str]] = "ANTHROPIC_BASE_URL"
    default_base_url: ClassVar[Optional[str]] = "https://api.anthropic.com"

    def _create_client(self) -> Any:
        from anthropic import AsyncAnthropic, omit

        return AsyncAnthropic(
            **self._client_options(),
            # anthropic 2.x sends `api_key` as a bearer token; Anthropic's API
            # authenticates API keys with the `x-api-key` header.
            default_headers={"x-api-key": self._secret(), "Authorization": omit},  # type: ignore[dict-item]
            http_client=self.http_client or self._http_client(),
        )

    def job_adapter(self) -> JobAdapter:
        """Anthropic's Message Batches API, for `use_offline_batch_generation`."""
        return AnthropicBatchJobs(self)

    @validate_call
    async def agenerate(
        self,
        input: ChatType,
        max_tokens: PositiveInt = 128,
        stop_sequences: Optional[List[str]] = None,
        temperature: Optional[float] = 1.0,
        top_p: Optional[float] = None,
        top_k: Optional[PositiveInt] = None,
        structured_output: Optional[StructuredOutput] = None,
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
            structured_output: the request's structured output (set by potstill): the
                model is made to call one tool whose input schema is the JSON schema, and
                the tool call's input is the generation.

        Returns:
            The generated text, with the request's token usage.
        """
        request = build_request(self.model, input, **passed_kwargs(locals()))
        return parse_response(await self.client.messages.create(**request))


def build_request(model: str, input: ChatType, **kwargs: Any) -> dict[str, Any]:
    """The keyword arguments of a `messages.create` call.

    Args:
        model: the model name.
        input: the conversation; its `system` messages, joined, become the top-level
            `system` field.
        **kwargs: `AnthropicLLM.agenerate`'s generation kwargs; those that are `None` are
            left out. The 2.x SDK no longer declares the sampling parameters, so
            `temperature`, `top_p` and `top_k` travel as `extra_body` fields, exactly as the
            API names them. A `structured_output` becomes one tool (its JSON schema as the
            `input_schema`) that `tool_choice` forces the model to call.

    Returns:
        The arguments.
    """
    system, messages = _split_system(input)
    request: dict[str, Any] = {"model": model, "messages": messages}
    if system is not None:
        request["system"] = system
    extra: dict[str, Any] = {}
    for name, value in kwargs.items():
        if value is None:
            continue
        if name == "structured_output":
            request["tools"] = [
                {
                    "name": value.name,
                    "description": "Gives the answer in the required structure.",
                    "input_schema": value.schema,
                }
            ]
            request["tool_choice"] = {"type": "tool", "name": value.name}
        else:
            (extra if name in _SAMPLING else request)[name] = value
    request["extra_body"] = extra or None
    return request


def parse_response(message: Any) -> Generations:
    """The generation of a `Message`: the input of its tool call as JSON (the structured
    output), else its text blocks joined; `None` without either.

    Args:
        message: the SDK's `Message`.

    Returns:
        The generation, with the request's token usage.
    """
    blocks = message.content or []
    calls = [block.input for block in blocks if block.type == "tool_use"]
    texts = [block.text for block in blocks if block.type == "text"]
    if calls:
        text: Optional[str] = json.dumps(calls[0], ensure_ascii=False)
    else:
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


class AnthropicBatchJobs(JobAdapter):
    """Anthropic's Message Batches API: each request's `params` are what `build_request`
    builds for `messages.create` (its `extra_body` fields inline); the answers are read by
    `parse_response`.
    """

    max_requests: ClassVar[int] = 100_000
    max_bytes: ClassVar[int] = 256 * 1024 * 1024

    def encode(self, request: JobRequest, kwargs: dict[str, Any]) -> dict[str, Any]:
        params = build_request(self.llm.model, request.input, **kwargs)
        params.update(params.pop("extra_body") or {})
        return {"custom_id": request.custom_id, "params": params}

    async def submit(self, items: list[dict[str, Any]]) -> str:
        batches = self.llm.client.messages.batches
        created = await self.retrying(lambda: batches.create(requests=items))
        return str(created.id)

    async def check(self, job_id: str) -> JobState:
        batch = await self.retrying(
            functools.partial(self.llm.client.messages.batches.retrieve, job_id)
        )
        counts = batch.request_counts
        total = counts.processing + counts.succeeded + counts.errored
        total += counts.canceled + counts.expired
        status = batch.processing_status
        if status == "ended" and (counts.expired or counts.canceled):
            status = "expired" if counts.expired else "canceled"
        return JobState(
            status=status,
            ended=batch.processing_status == "ended",
            done=total - counts.processing,
            total=total,
            job=batch,
        )

    async def results(self, state: JobState, kwargs: dict[str, Any]) -> dict[str, Generations]:
        batches = self.llm.client.messages.batches
        lines = await self.retrying(functools.partial(batches.results, state.job.id))
        return {item.custom_id: parse_batch_result(item.result) async for item in lines}


def parse_batch_result(result: Any) -> Generations:
    """The generation of one request of a Message Batch.

    Args:
        result: the SDK's `MessageBatchResult` (`succeeded`, `errored`, `canceled` or
            `expired`).

    Returns:
        The generation, or a failed one with the reason.
    """
    if result.type == "succeeded":
        return parse_response(result.message)
    if result.type == "errored":
        error = result.error.error
        return Generations.failed(1, f"{error.type}: {error.message}")
    ended = "expired (its 24 h window ended)" if result.type == "expired" else "was cancelled"
    return Generations.failed(1, f"{result.type}: the batch job {ended} before this request ran")


_SAMPLING = frozenset({"temperature", "top_p", "top_k"})


def _split_system(input: ChatType) -> tuple[Optional[str], list[dict[str, Any]]]:
    """Separates the system prompt from the conversation without touching `input`."""
    system = [message["content"] for message in input if message["role"] == "system"]
    messages = [
        {"role": message["role"], "content": message["content"]}
        for message in input
        if message["role"] != "system"
    ]
    return ("\n\n".join(system) if system else None), messages
