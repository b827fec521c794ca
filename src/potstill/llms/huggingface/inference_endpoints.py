"""`InferenceEndpointsLLM`: Hugging Face Inference Endpoints, Inference Providers and TGI
servers, through `huggingface_hub.AsyncInferenceClient`."""

from __future__ import annotations

import logging
import os
import random
import warnings
from typing import Any, ClassVar, Dict, List, Literal, Optional, Union

from pydantic import (
    Field,
    PositiveFloat,
    PositiveInt,
    PrivateAttr,
    SecretStr,
    model_validator,
    validate_call,
)

from potstill.errors import PotstillUserError
from potstill.llms.base import AsyncLLM
from potstill.llms.hosted import passed_kwargs, timeout_field
from potstill.llms.openai_format import json_schema_response_format, parse_chat_completion
from potstill.llms.structured import StructuredOutput
from potstill.llms.typing import GenerateOutput, Generations
from potstill.mixins.runtime_parameters import RuntimeParameter
from potstill.typing import ChatType
from potstill.utils.fields import ExecutionOnly
from potstill.utils.secrets import register_secret
from potstill.utils.stacklevel import user_stacklevel

_TOKEN_ENV_VAR = "HF_TOKEN"
_MAX_STOP_SEQUENCES = 4
_MAX_SEED = 2**31 - 1
# Kwargs that only one of the two routes understands, with the defaults that mean "unset".
_TEXT_GENERATION_ONLY = {
    "do_sample": False,
    "repetition_penalty": None,
    "return_full_text": False,
    "top_k": None,
    "typical_p": None,
    "watermark": False,
    "top_n_tokens": None,
}
_CHAT_ONLY = {
    "logit_bias": None,
    "logprobs": False,
    "presence_penalty": None,
    "tool_choice": None,
    "tool_prompt": None,
    "tools": None,
    "top_logprobs": None,
}

# potstill's name -> the chat-completion route's, where they differ.
_CHAT_NAMES = {"max_new_tokens": "max_tokens", "stop_sequences": "stop"}

_log = logging.getLogger("potstill.llms.inference_endpoints")


class InferenceEndpointsLLM(AsyncLLM):
    """An LLM served by Hugging Face: a dedicated Inference Endpoint, a model on
    Inference Providers, or any Text Generation Inference (TGI) server.

    Give exactly one of `model_id` (a model on the Hub, served by Inference Providers),
    `endpoint_name` (a dedicated Inference Endpoint, resolved through the Hub API in
    `load()`, resumed if paused) or `base_url` (the URL of a TGI-compatible server).

    Without `tokenizer_id`, conversations go to the chat-completion route
    (`chat_completion`), where the server applies the model's chat template. With a
    `tokenizer_id` (a Hub repository or a local directory), the prompt is built here with
    the tokenizer's chat template and sent to the text-generation route
    (`text_generation`); that needs `transformers`.

    The API has no `n`, so `num_generations` sends that many requests in parallel; each
    request gets a random `seed` unless one is given, so that the samples differ (a server
    cache would otherwise answer identical requests identically).

    Attributes:
        model_id: a model on the Hugging Face Hub, e.g. `meta-llama/Llama-3.1-8B-Instruct`.
        endpoint_name: the name of a dedicated Inference Endpoint.
        endpoint_namespace: the user or organization owning `endpoint_name`.
        base_url: the URL of a TGI-compatible server.
        api_key: the Hugging Face token; defaults to `$HF_TOKEN` (read when the LLM is
            created), else the token saved by `hf auth login` (read in `load()`).
        tokenizer_id: a tokenizer (Hub repository or local path) whose chat template
            builds the prompt for the text-generation route.
        model_display_name: the name reported as `model_name`.
        timeout: seconds to wait for a response before giving up on a request.

    Examples:
        ```python
        from potstill.llms import InferenceEndpointsLLM

        llm = InferenceEndpointsLLM(model_id="meta-llama/Llama-3.1-8B-Instruct")
        llm.load()
        llm.generate(inputs=[[{"role": "user", "content": "Hello!"}]])
        ```
    """

    model_id: Optional[str] = None
    endpoint_name: Optional[RuntimeParameter[str]] = Field(
        default=None, description="The name of the Inference Endpoint to use for the LLM."
    )
    endpoint_namespace: Optional[RuntimeParameter[str]] = Field(
        default=None, description="The namespace of the Inference Endpoint to use for the LLM."
    )
    base_url: Optional[RuntimeParameter[str]] = Field(
        default=None, description="The base URL to use for the Inference Endpoints API requests."
    )
    api_key: Optional[RuntimeParameter[SecretStr]] = Field(
        default_factory=lambda: os.getenv(_TOKEN_ENV_VAR),
        description="The API key to authenticate the requests to the Inference Endpoints API.",
    )
    tokenizer_id: Optional[str] = None
    model_display_name: Optional[str] = None
    timeout: ExecutionOnly[RuntimeParameter[PositiveFloat]] = timeout_field()

    structured_output_formats: ClassVar[tuple[str, ...]] = ("json", "regex")
    sdk_module: ClassVar[Optional[str]] = "huggingface_hub"
    sdk_extra: ClassVar[Optional[str]] = "hf-inference-endpoints"

    _token: Optional[str] = PrivateAttr(default=None)
    _url: Optional[str] = PrivateAttr(default=None)
    _model_name: Optional[str] = PrivateAttr(default=None)
    _tokenizer: Any = PrivateAttr(default=None)
    _warned: set = PrivateAttr(default_factory=set)

    @model_validator(mode="before")
    @classmethod
    def _drop_use_openai_client(cls, data: Any) -> Any:
        # distilabel 1.0/1.1 could send chats through the OpenAI client; every route here
        # already speaks the chat-completion API, so the switch has nothing left to do.
        if isinstance(data, dict) and "use_openai_client" in data:
            data = {key: value for key, value in data.items() if key != "use_openai_client"}
            warnings.warn(
                "`use_openai_client` is no longer needed and is ignored: InferenceEndpointsLLM "
                "sends conversations to the chat-completion route (OpenAI-compatible) unless "
                "`tokenizer_id` is set. Remove the argument.",
                DeprecationWarning,
                stacklevel=user_stacklevel(),
            )
        return data

    @model_validator(mode="after")
    def _one_target(self) -> InferenceEndpointsLLM:
        if self.model_id and self.endpoint_name:
            raise ValueError(
                "Give only one of `model_id` (a model served by Inference Providers) and "
                "`endpoint_name` (a dedicated Inference Endpoint), not both."
            )
        if not (self.model_id or self.endpoint_name or self.base_url):
            raise ValueError(
                "Give one of `model_id`, `endpoint_name` or `base_url` to tell "
                "InferenceEndpointsLLM which model or server to use."
            )
        if self.base_url and (self.model_id or self.endpoint_name):
            _log.warning(
                "InferenceEndpointsLLM got `base_url` and `%s`: `base_url` is ignored and the "
                "URL comes from `%s`.",
                "model_id" if self.model_id else "endpoint_name",
                "model_id" if self.model_id else "endpoint_name",
            )
        return self

    @property
    def model_name(self) -> str:
        """`model_display_name`, else the endpoint's model, `model_id`, `endpoint_name` or
        `base_url`, the first one set."""
        return (
            self.model_display_name
            or self._model_name
            or self.model_id
            or self.endpoint_name
            or self.base_url
            or type(self).__name__
        )

    def describe_endpoint(self) -> Optional[str]:
        """The URL requests go to (`base_url`, or the resolved endpoint's), named in error
        messages.

        Returns:
            The URL, or `None` for a model served by Inference Providers.
        """
        return self._url or self.base_url

    def native_structured_formats(self) -> tuple[str, ...]:
        """JSON on both routes; a regular expression only on the text-generation route (TGI's
        `grammar`), used with a `tokenizer_id`.

        Returns:
            The formats.
        """
        return self.structured_output_formats if self.tokenizer_id else ("json",)

    def load(self) -> None:
        """Checks the SDK and the token, resolves the endpoint and loads the tokenizer."""
        super().load()
        from huggingface_hub import get_token

        self._token = self._secret() or get_token()
        register_secret(self._token)  # the token `hf auth login` saved is a secret too
        if self._token is None:
            raise PotstillUserError(
                "To use `InferenceEndpointsLLM` an API key must be provided via `api_key` "
                "attribute or runtime parameter, or set the environment variable "
                f"`{_TOKEN_ENV_VAR}` (or log in with `hf auth login`)."
            )
        self._url, self._model_name = None, None
        if self.endpoint_name:
            self._url, self._model_name = _resolve_endpoint(
                self.endpoint_name, self.endpoint_namespace, self._token
            )
        elif not self.model_id:
            self._url = self.base_url
        self._tokenizer = _load_tokenizer(self.tokenizer_id, self._token)

    def unload(self) -> None:
        """Closes the clients and drops the token and the tokenizer."""
        super().unload()
        self._token, self._tokenizer = None, None

    def _create_client(self) -> Any:
        from huggingface_hub import AsyncInferenceClient

        return AsyncInferenceClient(
            model=self._url or self.model_id, token=self._token, timeout=self.timeout
        )

    @validate_call
    async def agenerate(
        self,
        input: ChatType,
        max_new_tokens: PositiveInt = 128,
        frequency_penalty: Optional[float] = None,
        logit_bias: Optional[List[float]] = None,
        logprobs: bool = False,
        presence_penalty: Optional[float] = None,
        seed: Optional[int] = None,
        stop_sequences: Optional[Union[str, List[str]]] = None,
        temperature: float = 1.0,
        tool_choice: Optional[Union[Dict[str, Any], Literal["auto", "none", "required"]]] = None,
        tool_prompt: Optional[str] = None,
        tools: Optional[List[Dict[str, Any]]] = None,
        top_logprobs: Optional[PositiveInt] = None,
        top_n_tokens: Optional[PositiveInt] = None,
        top_p: Optional[float] = None,
        do_sample: bool = False,
        repetition_penalty: Optional[float] = None,
        return_full_text: bool = False,
        top_k: Optional[PositiveInt] = None,
        typical_p: Optional[float] = None,
        watermark: bool = False,
        structured_output: Optional[StructuredOutput] = None,
    ) -> GenerateOutput:
        """Generates one answer for one conversation.

        Kwargs marked "text generation" apply only with a `tokenizer_id`; kwargs marked
        "chat" apply only without one (a warning says when one is ignored).

        Args:
            input: the conversation.
            max_new_tokens: the maximum number of tokens to generate.
            frequency_penalty: penalizes tokens by how often they already appeared.
            logit_bias: chat: biases added to the logits of the tokens.
            logprobs: chat: return the log probabilities of the generated tokens.
            presence_penalty: chat: penalizes tokens that already appeared.
            seed: the sampling seed; `None` draws a random one per request, so that
                `num_generations` samples differ.
            stop_sequences: up to 4 sequences where the model stops generating (more are
                dropped with a warning).
            temperature: the sampling temperature.
            tool_choice: chat: `"auto"`, `"none"`, `"required"` or a specific tool.
            tool_prompt: chat: a prompt prepended to the tools.
            tools: chat: the tools the model may call.
            top_logprobs: chat: how many most likely tokens to return per position.
            top_n_tokens: text generation: how many most likely tokens to return per
                position in the details.
            top_p: the nucleus sampling probability mass.
            do_sample: text generation: sample instead of greedy decoding.
            repetition_penalty: text generation: penalizes repeated tokens (1.0 = none).
            return_full_text: text generation: prepend the prompt to the generated text.
            top_k: text generation: sample only from the `top_k` most likely tokens.
            typical_p: text generation: typical decoding mass.
            watermark: text generation: watermark the generated text.
            structured_output: the request's structured output (set by potstill): a JSON
                schema `response_format` on the chat route; TGI's `grammar` (JSON schema
                or regular expression) on the text-generation route.

        Returns:
            The generated text, with the request's token usage.
        """
        given = passed_kwargs(locals())
        kwargs = {
            **given,
            "seed": seed if seed is not None else random.randint(0, _MAX_SEED),
            "stop_sequences": self._stop_list(stop_sequences),
        }
        if self._tokenizer is None:
            self._warn_ignored(given, _TEXT_GENERATION_ONLY, "without a `tokenizer_id`")
            model = (self.model_id or "tgi") if self._url else None
            completion = await self.client.chat_completion(
                **build_chat_request(input, model, **kwargs)
            )
            return parse_chat_completion(completion, logprobs, blank_is_empty=True)
        self._warn_ignored(given, _CHAT_ONLY, "with a `tokenizer_id` (text generation)")
        prompt = self._tokenizer.apply_chat_template(
            list(input), tokenize=False, add_generation_prompt=True
        )
        output = await self.client.text_generation(
            **build_text_generation_request(prompt, **kwargs)
        )
        prompt_tokens = len(self._tokenizer.encode(prompt, add_special_tokens=False))
        return parse_text_generation(output, prompt_tokens)

    def _stop_list(self, stop: Optional[Union[str, List[str]]]) -> Optional[List[str]]:
        if stop is None:
            return None
        stop = [stop] if isinstance(stop, str) else list(stop)
        if len(stop) > _MAX_STOP_SEQUENCES:
            self._warn_once(
                "stop_sequences",
                "Only %d stop sequences are supported; using the first %d of %d.",
                _MAX_STOP_SEQUENCES,
                _MAX_STOP_SEQUENCES,
                len(stop),
            )
            stop = stop[:_MAX_STOP_SEQUENCES]
        return stop

    def _warn_ignored(self, given: dict[str, Any], unset: dict[str, Any], where: str) -> None:
        for name, default in unset.items():
            if given.get(name) != default:
                self._warn_once(name, "Generation kwarg `%s` is ignored %s.", name, where)

    def _warn_once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.logger.warning(message, *args)


def _resolve_endpoint(name: str, namespace: Optional[str], token: str) -> tuple[str, str]:
    """The URL and model repository of a dedicated Inference Endpoint, resumed if paused."""
    from huggingface_hub import get_inference_endpoint

    endpoint = get_inference_endpoint(name, namespace=namespace, token=token)
    if endpoint.status in ("paused", "scaledToZero"):
        endpoint = endpoint.resume()
    if endpoint.status != "running" or endpoint.url is None:
        endpoint = endpoint.wait(timeout=300)
    return endpoint.url, endpoint.repository  # type: ignore[return-value]


def _load_tokenizer(tokenizer_id: Optional[str], token: Optional[str]) -> Any:
    if tokenizer_id is None:
        return None
    try:
        from transformers import AutoTokenizer
    except ImportError as error:
        raise ImportError(
            "`tokenizer_id` needs `transformers` to apply the chat template: "
            "`pip install transformers`."
        ) from error
    return AutoTokenizer.from_pretrained(tokenizer_id, token=token)


def build_chat_request(input: ChatType, model: Optional[str], **kwargs: Any) -> dict[str, Any]:
    """The keyword arguments of a `chat_completion` call.

    Args:
        input: the conversation, sent as `messages` (`role` and `content` of each).
        model: the model named in the body (a TGI server takes any name), or `None` when
            the client's target names it.
        **kwargs: `InferenceEndpointsLLM.agenerate`'s generation kwargs:
            `max_new_tokens` is sent as `max_tokens` and `stop_sequences` as `stop`; the
            text-generation-only kwargs are left out; a `structured_output` is sent as a
            strict JSON schema `response_format`.

    Returns:
        The arguments.
    """
    request = {
        _CHAT_NAMES.get(name, name): value
        for name, value in kwargs.items()
        if name not in _TEXT_GENERATION_ONLY and name != "structured_output"
    }
    if kwargs.get("structured_output") is not None:
        request["response_format"] = json_schema_response_format(kwargs["structured_output"])
    request["messages"] = [{"role": m["role"], "content": m["content"]} for m in input]
    if model is not None:
        request["model"] = model
    return request


def build_text_generation_request(prompt: str, **kwargs: Any) -> dict[str, Any]:
    """The keyword arguments of a `text_generation` call, asking for the details (usage).

    Args:
        prompt: the prompt, rendered with the tokenizer's chat template.
        **kwargs: `InferenceEndpointsLLM.agenerate`'s generation kwargs: `stop_sequences`
            is sent as `stop`; the chat-only kwargs are left out; a `structured_output`
            becomes TGI's `grammar` (`{"type": "json" | "regex", "value": ...}`).

    Returns:
        The arguments.
    """
    request = {
        ("stop" if name == "stop_sequences" else name): value
        for name, value in kwargs.items()
        if name not in _CHAT_ONLY and name != "structured_output"
    }
    structured = kwargs.get("structured_output")
    if structured is not None:
        request["grammar"] = {"type": structured.format, "value": structured.schema}
    return {"prompt": prompt, "details": True, **request}


def parse_text_generation(output: Any, input_tokens: Optional[int]) -> Generations:
    """The generation of a `text_generation` answer, `None` when empty.

    Args:
        output: the client's `TextGenerationOutput` (with its details).
        input_tokens: the prompt's tokens, counted with the tokenizer.

    Returns:
        The generation, with the generated tokens from the details.
    """
    text = output.generated_text
    generations = Generations.from_request(
        [text or None],
        input_tokens=input_tokens,
        output_tokens=output.details.generated_tokens if output.details else None,
    )
    if not text:
        reason = output.details.finish_reason if output.details else None
        generations.errors[0] = f"empty answer (finish_reason={reason})"
    return generations
