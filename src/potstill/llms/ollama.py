"""`OllamaLLM`: models served by Ollama, through the official `ollama` SDK."""

from __future__ import annotations

import os
from typing import Any, ClassVar, Dict, List, Literal, Optional, Union

from pydantic import ConfigDict, Field, PositiveFloat, SecretStr, validate_call
from typing_extensions import TypedDict

from potstill.llms.base import AsyncLLM
from potstill.llms.hosted import passed_kwargs, timeout_field
from potstill.llms.structured import StructuredOutput
from potstill.llms.typing import GenerateOutput, Generations
from potstill.mixins.runtime_parameters import RuntimeParameter
from potstill.typing import ChatType
from potstill.utils.fields import ExecutionOnly


class Options(TypedDict, total=False):
    """Ollama's model options (llama.cpp knobs). Keys not listed here are passed through."""

    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]

    numa: bool
    num_ctx: int
    num_batch: int
    num_gpu: int
    main_gpu: int
    low_vram: bool
    f16_kv: bool
    logits_all: bool
    vocab_only: bool
    use_mmap: bool
    use_mlock: bool
    embedding_only: bool
    num_thread: int
    num_keep: int
    seed: int
    num_predict: int
    top_k: int
    top_p: float
    min_p: float
    tfs_z: float
    typical_p: float
    repeat_last_n: int
    temperature: float
    repeat_penalty: float
    presence_penalty: float
    frequency_penalty: float
    mirostat: int
    mirostat_tau: float
    mirostat_eta: float
    penalize_newline: bool
    stop: List[str]


class OllamaLLM(AsyncLLM):
    """An LLM served by an Ollama server (local, or ollama.com with an API key).

    Messages are sent as they are (`system`, `user` and `assistant` roles) to `/api/chat`.
    Ollama has no `n`, so `num_generations` sends that many requests in parallel (give
    `options={"seed": ...}` only if you want them identical). Token usage comes from the
    response's `prompt_eval_count` and `eval_count`.

    Attributes:
        model: the model name, e.g. `llama3.2`.
        host: the server's URL; `None` uses `$OLLAMA_HOST`, else `http://127.0.0.1:11434`.
        timeout: seconds to wait for a response before giving up on a request.
        follow_redirects: whether the HTTP client follows redirects.
        api_key: sent as a bearer token when set (ollama.com); defaults to
            `$OLLAMA_API_KEY`. A local server needs none.

    Examples:
        ```python
        from potstill.llms import OllamaLLM

        llm = OllamaLLM(model="llama3.2")
        llm.load()
        llm.generate(inputs=[[{"role": "user", "content": "Hello!"}]])
        ```
    """

    model: str
    host: Optional[RuntimeParameter[str]] = Field(
        default=None, description="The host of the Ollama API."
    )
    timeout: ExecutionOnly[RuntimeParameter[PositiveFloat]] = timeout_field()
    follow_redirects: bool = True
    api_key: Optional[RuntimeParameter[SecretStr]] = Field(
        default_factory=lambda: os.getenv("OLLAMA_API_KEY"),
        description="The API key for ollama.com (a local Ollama server needs none).",
    )

    structured_output_formats: ClassVar[tuple[str, ...]] = ("json",)
    sdk_module: ClassVar[Optional[str]] = "ollama"

    @property
    def model_name(self) -> str:
        """The `model` field."""
        return self.model

    def describe_endpoint(self) -> Optional[str]:
        """The `host` field, named in error messages.

        Returns:
            The server's URL, or `None` when the SDK picks it (`$OLLAMA_HOST`).
        """
        return self.host

    def _create_client(self) -> Any:
        from ollama import AsyncClient

        key = self._secret()
        return AsyncClient(
            host=self.host,
            timeout=self.timeout,
            follow_redirects=self.follow_redirects,
            headers={"Authorization": f"Bearer {key}"} if key else None,
        )

    @validate_call
    async def agenerate(
        self,
        input: ChatType,
        format: Union[Literal["", "json"], Dict[str, Any]] = "",
        options: Optional[Options] = None,
        keep_alive: Optional[Union[float, str]] = None,
        structured_output: Optional[StructuredOutput] = None,
    ) -> GenerateOutput:
        """Generates one answer for one conversation.

        Args:
            input: the conversation.
            format: `""` for free text, `"json"` for JSON mode, or a JSON schema for
                structured output.
            options: model options such as `temperature`, `top_p`, `top_k`, `seed`,
                `num_predict` (the maximum number of tokens) and `stop`.
            keep_alive: how long the model stays loaded after the request (seconds, or a
                duration such as `"5m"`); `None` uses the server's default.
            structured_output: the request's structured output (set by potstill), sent as
                `format` (its JSON schema).

        Returns:
            The generated text, with the request's token usage.
        """
        request = build_request(self.model, input, **passed_kwargs(locals()))
        return parse_response(await self.client.chat(**request))


def build_request(model: str, input: ChatType, **kwargs: Any) -> dict[str, Any]:
    """The keyword arguments of a (not streamed) `chat` call.

    Args:
        model: the model the server runs, e.g. `llama3.2`.
        input: the conversation; Ollama takes each message's role and content as they are.
        **kwargs: `OllamaLLM.agenerate`'s generation kwargs (`format`, `options`,
            `keep_alive`), passed as they are; a `structured_output` is sent as `format`
            (its JSON schema).

    Returns:
        The arguments.
    """
    kwargs = dict(kwargs)
    options = kwargs.get("options")
    structured = kwargs.pop("structured_output", None)
    if structured is not None:
        kwargs["format"] = structured.schema
    return {
        **kwargs,
        "model": model,
        "messages": [{"role": message["role"], "content": message["content"]} for message in input],
        "stream": False,
        "options": dict(options) if options is not None else None,
    }


def parse_response(response: Any) -> Generations:
    """The generation of a chat response: the message's text, `None` when empty.

    Args:
        response: the SDK's `ChatResponse`.

    Returns:
        The generation, with the token usage from `prompt_eval_count` and `eval_count`.
    """
    text = response.message.content if response.message is not None else None
    generations = Generations.from_request(
        [text or None],
        input_tokens=response.prompt_eval_count,
        output_tokens=response.eval_count,
    )
    if not text:
        generations.errors[0] = f"empty answer (done_reason={response.done_reason})"
    return generations
