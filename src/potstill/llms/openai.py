"""`OpenAILLM`: OpenAI's chat completions API through the official `openai` SDK."""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar, Dict, List, Literal, Optional, Union

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, SecretStr, validate_call

from potstill.llms.base import AsyncLLM
from potstill.llms.mixins.magpie import MagpieChatTemplateMixin
from potstill.llms.typing import GenerateOutput, Generations
from potstill.mixins.runtime_parameters import RuntimeParameter
from potstill.typing import ChatType

ResponseFormat = Union[Literal["text", "json", "json_object"], Dict[str, Any]]


class OpenAILLM(AsyncLLM, MagpieChatTemplateMixin):
    """An LLM served by OpenAI, or by any server that speaks its chat completions API.

    `num_generations` uses the API's native `n`. Token usage comes from the response's
    `usage`. There is no per-request timeout beyond the client's `timeout`.

    Attributes:
        model: the model name, e.g. `gpt-4o-mini`.
        base_url: the API's base URL; defaults to `$OPENAI_BASE_URL`, else OpenAI's.
        api_key: the API key; defaults to `$OPENAI_API_KEY`.
        timeout: seconds to wait for a response before giving up on a request.
        default_headers: extra HTTP headers sent with every request (secret: never dumped).
        use_magpie_template: send a conversation that does not end with a user message to
            the completions endpoint as raw text, ending with `magpie_pre_query_template`, so
            the model writes the user's turn (for servers that take raw prompts, e.g. vLLM).
        magpie_pre_query_template: `"llama3"` or `"qwen2"` (or the text that opens a user
            turn in one of those two formats).

    Examples:
        ```python
        from potstill.llms import OpenAILLM

        llm = OpenAILLM(model="gpt-4o-mini")
        llm.load()
        llm.generate(inputs=[[{"role": "user", "content": "Hello!"}]])
        ```
    """

    model: str
    base_url: Optional[RuntimeParameter[str]] = Field(
        default_factory=lambda: os.getenv("OPENAI_BASE_URL", "https://api.openai.com/v1"),
        description="The base URL to use for the OpenAI API requests.",
    )
    api_key: Optional[RuntimeParameter[SecretStr]] = Field(
        default_factory=lambda: os.getenv("OPENAI_API_KEY"),
        description="The API key to authenticate the requests to the OpenAI API.",
    )
    timeout: RuntimeParameter[PositiveFloat] = Field(
        default=120,
        description="The maximum time in seconds to wait for a response from the API.",
    )
    default_headers: Optional[RuntimeParameter[Dict[str, SecretStr]]] = Field(
        default=None,
        description="Extra HTTP headers to send with every request (kept secret: headers "
        "often carry credentials, so they are never dumped or shown).",
    )

    sdk_module: ClassVar[Optional[str]] = "openai"
    api_key_env_var: ClassVar[Optional[str]] = "OPENAI_API_KEY"

    @property
    def model_name(self) -> str:
        """The `model` field."""
        return self.model

    def _create_client(self) -> Any:
        from openai import AsyncOpenAI

        return AsyncOpenAI(
            base_url=self.base_url,
            api_key=self._secret(),
            max_retries=0,  # retries happen in AsyncLLM, honouring Retry-After
            timeout=self.timeout,
            default_headers=self._headers(),
            http_client=_http_client(),
        )

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

        Returns:
            The completions, with the request's token usage.
        """
        kwargs: dict[str, Any] = {
            "messages": input,
            "model": self.model,
            "n": num_generations,
            "max_tokens": max_new_tokens,
            "frequency_penalty": frequency_penalty,
            "presence_penalty": presence_penalty,
            "temperature": temperature,
            "top_p": top_p,
        }
        optional = {
            "stop": stop,
            "response_format": _response_format(response_format),
            "seed": seed,
            "top_logprobs": top_logprobs,
        }
        kwargs.update({key: value for key, value in optional.items() if value is not None})
        if logprobs:
            kwargs["logprobs"] = True
        # The SDK merges `extra_body` into the JSON body; `client.post` takes the body as is.
        kwargs.update(extra_body or {})
        if self.uses_magpie_prompt(input):
            return _raw_completion(await post_json(self.client, "/completions", _raw(kwargs, self)))
        return _generations(await post_json(self.client, "/chat/completions", kwargs), logprobs)


def _response_format(value: Optional[ResponseFormat]) -> Optional[Dict[str, Any]]:
    if value is None or isinstance(value, dict):
        return value
    return {"type": "text"} if value == "text" else {"type": "json_object"}


def _http_client() -> Any:
    """The SDK's aiohttp transport when aiohttp is installed (much faster under
    concurrency than the default httpx transport), else the SDK's default."""
    try:
        from openai import DefaultAioHttpClient

        return DefaultAioHttpClient()
    except (ImportError, RuntimeError):  # the SDK's `aiohttp` extra is not installed
        return None


async def post_json(client: Any, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POSTs a JSON body through an OpenAI-style SDK client and returns the decoded answer.

    This is the SDK's documented way to make a custom request (`client.post(...)`): it keeps
    the SDK's auth, base URL, headers, retries and error types, but skips the typed
    transformation of the request and parsing of the response, which cost more CPU than
    the HTTP call itself when hundreds of requests are in flight.

    Args:
        client: an `AsyncOpenAI`-like client.
        path: the endpoint, e.g. `/chat/completions`.
        body: the JSON body.

    Returns:
        The decoded JSON object.
    """
    text = await client.post(path, cast_to=str, body=body)
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"Expected a JSON object from {path}, got {type(data).__name__}.")
    return data


def _generations(completion: dict[str, Any], logprobs: bool) -> Generations:
    choices = sorted(completion.get("choices") or [], key=lambda choice: choice.get("index", 0))
    messages = [choice.get("message") or {} for choice in choices]
    usage = completion.get("usage") or {}
    generations = Generations.from_request(
        [message.get("content") for message in messages],
        input_tokens=usage.get("prompt_tokens"),
        output_tokens=usage.get("completion_tokens"),
        logprobs=[_choice_logprobs(choice) for choice in choices] if logprobs else None,
    )
    for index, (choice, message) in enumerate(zip(choices, messages)):
        if message.get("content") is None:
            refusal = message.get("refusal")
            generations.errors[index] = (
                f"refused: {refusal}"
                if refusal
                else f"no content (finish_reason={choice.get('finish_reason')})"
            )
    return generations


def _raw(body: dict[str, Any], llm: MagpieChatTemplateMixin) -> dict[str, Any]:
    """The completions-endpoint body of a Magpie request: the rendered prompt instead of
    the messages, without the chat-only fields."""
    raw = {k: v for k, v in body.items() if k not in _CHAT_ONLY}
    raw["prompt"] = llm.render_raw_prompt(body["messages"])
    return raw


_CHAT_ONLY = frozenset({"messages", "response_format", "logprobs", "top_logprobs"})


def _raw_completion(completion: dict[str, Any]) -> Generations:
    choices = sorted(completion.get("choices") or [], key=lambda choice: choice.get("index", 0))
    usage = completion.get("usage") or {}
    return Generations.from_request(
        [choice.get("text") for choice in choices],
        input_tokens=usage.get("prompt_tokens"),
        output_tokens=usage.get("completion_tokens"),
    )


def _choice_logprobs(choice: dict[str, Any]) -> Optional[list[dict[str, Any]]]:
    content = (choice.get("logprobs") or {}).get("content")
    if not content:
        return None
    return [
        {
            "token": item.get("token"),
            "logprob": item.get("logprob"),
            "top_logprobs": [
                {"token": top.get("token"), "logprob": top.get("logprob")}
                for top in item.get("top_logprobs") or []
            ],
        }
        for item in content
    ]
