"""`OpenAILLM`: OpenAI's chat completions API through the official `openai` SDK."""

from __future__ import annotations

import functools
import json
from typing import Any, ClassVar, Dict, List, Optional, Union

from pydantic import Field, NonNegativeInt, PositiveInt, SecretStr, validate_call

from potstill.errors import PotstillUserError
from potstill.llms.batch_jobs import JobAdapter, JobRequest, JobState, OfflineBatchGeneration
from potstill.llms.hosted import HostedLLM, passed_kwargs
from potstill.llms.mixins.magpie import MagpieChatTemplateMixin
from potstill.llms.openai_format import (
    ResponseFormat,
    json_schema_response_format,
    parse_chat_completion,
    parse_text_completion,
    wire_response_format,
)
from potstill.llms.structured import StructuredOutput
from potstill.llms.typing import GenerateOutput, Generations
from potstill.mixins.runtime_parameters import RuntimeParameter
from potstill.typing import ChatType

__all__ = [
    "OpenAIBatchJobs",
    "OpenAILLM",
    "ResponseFormat",
    "build_raw_request",
    "build_request",
    "parse_batch_line",
]


class OpenAILLM(OfflineBatchGeneration, HostedLLM, MagpieChatTemplateMixin):
    """An LLM served by OpenAI, or by any server that speaks its chat completions API.

    `num_generations` uses the API's native `n`. Token usage comes from the response's
    `usage`. There is no per-request timeout beyond the client's `timeout`.

    Attributes:
        model: the model name, e.g. `gpt-4o-mini`.
        base_url: the API's base URL; defaults to `$OPENAI_BASE_URL`, else
            `https://api.openai.com/v1`.
        api_key: the API key; defaults to `$OPENAI_API_KEY`.
        timeout: seconds to wait for a response before giving up on a request.
        default_headers: extra HTTP headers sent with every request (secret: never dumped).
        use_magpie_template: send a conversation that does not end with a user message to
            the completions endpoint as raw text, ending with `magpie_pre_query_template`, so
            the model writes the user's turn (for servers that take raw prompts, e.g. vLLM).
        magpie_pre_query_template: `"llama3"` or `"qwen2"` (or the text that opens a user
            turn in one of those two formats).
        use_offline_batch_generation: send each batch's requests as a job of OpenAI's Batch
            API and wait for the answers (see the guide's "Provider batch APIs").
        offline_batch_generation_block_until_done: seconds between two checks of a pending
            batch job (30 when not set).

    Examples:
        ```python
        from potstill.llms import OpenAILLM

        llm = OpenAILLM(model="gpt-4o-mini")
        llm.load()
        llm.generate(inputs=[[{"role": "user", "content": "Hello!"}]])
        ```
    """

    default_headers: Optional[RuntimeParameter[Dict[str, SecretStr]]] = Field(
        default=None,
        description="Extra HTTP headers to send with every request (kept secret: headers "
        "often carry credentials, so they are never dumped or shown).",
    )

    structured_output_formats: ClassVar[tuple[str, ...]] = ("json",)
    sdk_module: ClassVar[Optional[str]] = "openai"
    api_key_env_var: ClassVar[Optional[str]] = "OPENAI_API_KEY"
    base_url_env_var: ClassVar[Optional[str]] = "OPENAI_BASE_URL"
    default_base_url: ClassVar[Optional[str]] = "https://api.openai.com/v1"

    def _create_client(self) -> Any:
        from openai import AsyncOpenAI

        return AsyncOpenAI(
            **self._client_options(),
            default_headers=self._headers(),
            http_client=self._http_client(),
        )

    def job_adapter(self) -> JobAdapter:
        """OpenAI's Batch API, for `use_offline_batch_generation`."""
        return OpenAIBatchJobs(self)

    def _headers(self) -> Optional[dict[str, str]]:
        """`default_headers` with their secret values revealed, for the SDK client."""
        if not self.default_headers:
            return None
        return {name: value.get_secret_value() for name, value in self.default_headers.items()}

    @validate_call
    async def agenerate(
        self,
        input: ChatType,
        num_generations: int = 1,
        max_new_tokens: NonNegativeInt = 128,
        frequency_penalty: float = 0.0,
        presence_penalty: float = 0.0,
        temperature: float = 1.0,
        top_p: float = 1.0,
        stop: Optional[Union[str, List[str]]] = None,
        response_format: Optional[ResponseFormat] = None,
        seed: Optional[int] = None,
        logprobs: bool = False,
        top_logprobs: Optional[PositiveInt] = None,
        extra_body: Optional[Dict[str, Any]] = None,
        structured_output: Optional[StructuredOutput] = None,
    ) -> GenerateOutput:
        """Generates `num_generations` completions for one conversation.

        Args:
            input: the conversation.
            num_generations: the number of completions (sent as `n`).
            max_new_tokens: the maximum number of tokens to generate (sent as `max_tokens`).
            frequency_penalty: penalizes tokens by how often they already appeared.
            presence_penalty: penalizes tokens that already appeared.
            temperature: the sampling temperature.
            top_p: the nucleus sampling probability mass.
            stop: up to 4 sequences where the API stops generating.
            response_format: `"text"`, `"json"`/`"json_object"` (JSON mode) or a full
                `response_format` dict, e.g. `{"type": "json_schema", "json_schema": {...}}`.
            seed: a seed for best-effort deterministic sampling.
            logprobs: return the log probabilities of the generated tokens.
            top_logprobs: how many most likely tokens to return per position (needs
                `logprobs=True`).
            extra_body: extra JSON fields for OpenAI-compatible servers (e.g. vLLM's).
            structured_output: the request's structured output (set by potstill from the
                `structured_output` field or the input), sent as a strict JSON schema
                `response_format`.

        Returns:
            The completions, with the request's token usage.
        """
        body = build_request(self.model, input, num_generations, **passed_kwargs(locals()))
        if self.uses_magpie_prompt(input):
            raw = build_raw_request(body, self.render_raw_prompt(input))
            return parse_text_completion(await self._post_json("/completions", raw))
        return parse_chat_completion(await self._post_json("/chat/completions", body), logprobs)


# potstill's name -> the API's, where they differ.
_WIRE_NAMES = {"max_new_tokens": "max_tokens"}
# Kwargs that are not body fields as they are.
_NOT_SENT = frozenset({"extra_body", "structured_output"})
# Fields of a chat request that the completions endpoint does not take.
_CHAT_ONLY = frozenset({"messages", "response_format", "logprobs", "top_logprobs"})


def build_request(
    model: str, input: ChatType, num_generations: int = 1, **kwargs: Any
) -> dict[str, Any]:
    """The JSON body of a chat completions request.

    Args:
        model: the model name.
        input: the conversation, sent as `messages` unchanged.
        num_generations: sent as `n`.
        **kwargs: `OpenAILLM.agenerate`'s generation kwargs: `max_new_tokens` is sent as
            `max_tokens`, `response_format` in the API's form, `logprobs` only when true,
            `extra_body` merged into the body; kwargs that are `None` are left out. A
            `structured_output` becomes a strict JSON schema `response_format` (it wins over
            a `response_format` kwarg).

    Returns:
        The body.
    """
    body: dict[str, Any] = {"messages": input, "model": model, "n": num_generations}
    for name, value in kwargs.items():
        if value is None or name in _NOT_SENT or (name == "logprobs" and not value):
            continue
        body[_WIRE_NAMES.get(name, name)] = (
            wire_response_format(value) if name == "response_format" else value
        )
    if kwargs.get("structured_output") is not None:
        body["response_format"] = json_schema_response_format(kwargs["structured_output"])
    # The SDK merges `extra_body` into the JSON body; `client.post` takes the body as is.
    body.update(kwargs.get("extra_body") or {})
    return body


def build_raw_request(body: dict[str, Any], prompt: str) -> dict[str, Any]:
    """The completions-endpoint body of a Magpie request: the rendered prompt instead of the
    messages, without the chat-only fields.

    Args:
        body: the chat request's body (`build_request`).
        prompt: the raw prompt (`render_raw_prompt`).

    Returns:
        The body for `/completions`.
    """
    raw = {name: value for name, value in body.items() if name not in _CHAT_ONLY}
    raw["prompt"] = prompt
    return raw


class OpenAIBatchJobs(JobAdapter):
    """OpenAI's Batch API: the requests, as `build_request` builds them, are uploaded as a
    JSONL file (Files API) and run as a batch with a 24-hour window; the answers come from
    the batch's output and error files and are read by `parse_chat_completion`.
    """

    endpoint: ClassVar[str] = "/v1/chat/completions"
    """The endpoint the batch runs, as each request line and the batch name it."""
    max_requests: ClassVar[int] = 50_000
    max_bytes: ClassVar[int] = 200 * 1024 * 1024

    def encode(self, request: JobRequest, kwargs: dict[str, Any]) -> dict[str, Any]:
        llm = self.llm
        if llm.uses_magpie_prompt(request.input):
            raise PotstillUserError(
                f"`{type(llm).__name__}` cannot send a Magpie prompt (`use_magpie_template`) "
                "in a batch job: the Batch API runs chat completions only. Set "
                "`use_offline_batch_generation=False`."
            )
        body = build_request(llm.model, request.input, request.num_generations, **kwargs)
        return {
            "custom_id": request.custom_id,
            "method": "POST",
            "url": self.endpoint,
            "body": body,
        }

    async def submit(self, items: list[dict[str, Any]]) -> str:
        client = self.llm.client
        data = "".join(json.dumps(item) + "\n" for item in items).encode()
        upload = await self.retrying(
            lambda: client.files.create(file=("potstill-batch.jsonl", data), purpose="batch")
        )
        job = await self.retrying(
            lambda: client.batches.create(
                input_file_id=upload.id, endpoint=self.endpoint, completion_window="24h"
            )
        )
        return str(job.id)

    async def check(self, job_id: str) -> JobState:
        job = await self.retrying(functools.partial(self.llm.client.batches.retrieve, job_id))
        counts = job.request_counts
        return JobState(
            status=job.status,
            ended=job.status in _ENDED,
            done=counts.completed + counts.failed if counts else 0,
            total=counts.total if counts else 0,
            problem=batch_problem(job.id, job.status, job.errors),
            job=job,
        )

    async def results(self, state: JobState, kwargs: dict[str, Any]) -> dict[str, Generations]:
        client = self.llm.client
        answers = {}
        for file_id in (state.job.output_file_id, state.job.error_file_id):
            if not file_id:
                continue
            content = await self.retrying(functools.partial(client.files.content, file_id))
            for line in content.text.splitlines():
                if line.strip():
                    item = json.loads(line)
                    answers[item["custom_id"]] = parse_batch_line(item, bool(kwargs["logprobs"]))
        return answers


_ENDED = frozenset({"completed", "expired", "cancelled", "failed"})


def parse_batch_line(item: dict[str, Any], logprobs: bool = False) -> Generations:
    """The generations of one line of a batch's output or error file.

    Args:
        item: the decoded line: `custom_id`, `response` (`status_code`, `body`), `error`.
        logprobs: keep each choice's token logprobs.

    Returns:
        The answer's generations, or one failed generation with the line's error.
    """
    response = item.get("response") or {}
    body = response.get("body")
    if response.get("status_code") == 200 and isinstance(body, dict):
        return parse_chat_completion(body, logprobs)
    error = item.get("error") or (body.get("error") if isinstance(body, dict) else None)
    error = error if isinstance(error, dict) else {}
    status = response.get("status_code")
    code = error.get("code") or (f"HTTP {status}" if status else "error")
    return Generations.failed(1, f"{code}: {error.get('message') or 'no message'}")


def batch_problem(job_id: str, status: str, errors: Any) -> Optional[str]:
    """Why the requests of an ended batch that has no line for them have no answer.

    Args:
        job_id: the batch's id.
        status: its status.
        errors: its `errors` (the validation errors of a `failed` batch).

    Returns:
        The reason, or `None` when the batch is not expired, cancelled or failed.
    """
    if status == "failed":
        found = [
            f"line {error.line}: {error.message}" if error.line else str(error.message)
            for error in (getattr(errors, "data", None) or [])
        ]
        return f"batch job {job_id} failed: " + ("; ".join(found) or "no reason given")
    if status == "expired":
        return f"batch job {job_id} expired (its 24 h window ended) before this request ran"
    if status == "cancelled":
        return f"batch job {job_id} was cancelled before this request ran"
    return None
