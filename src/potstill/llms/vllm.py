"""`vLLM`: a local model served in-process by the vLLM engine."""

from __future__ import annotations

import contextlib
import gc
from typing import Any, Callable, ClassVar, Dict, List, Optional, Union

from pydantic import (
    Field,
    NonNegativeFloat,
    PositiveInt,
    field_validator,
    validate_call,
)

from potstill.errors import PotstillUserError
from potstill.llms.chat_templates import resolve_chat_template
from potstill.llms.local import ChatTemplateLLM
from potstill.llms.structured import StructuredOutput, requested_output
from potstill.llms.typing import GenerateOutput, Generations
from potstill.mixins.runtime_parameters import RuntimeParameter
from potstill.typing import ChatType


class vLLM(ChatTemplateLLM):
    """A model run by vLLM's offline engine (`vllm.LLM`) in this process.

    Each call hands the whole batch to the engine, which schedules it with continuous
    batching. Prompts are rendered with the tokenizer's chat template (the `chat_template`
    field replaces it; a tokenizer without one gets ChatML) and passed as token ids, so
    the template's own special tokens are not doubled. `num_generations` is vLLM's native
    `SamplingParams(n=...)`. Token usage comes from the engine: the prompt's token ids and
    each completion's token ids. A `structured_output` (JSON schema or regular expression)
    constrains decoding with vLLM's own structured-output parameters
    (`StructuredOutputsParams`, or `GuidedDecodingParams` before vLLM 0.10.2), run by the
    engine's backend (xgrammar or llguidance, as vLLM picks).

    Attributes:
        model: the model id on the Hub, or the path of a local folder.
        dtype: the dtype of the weights and activations (`"auto"`, `"float16"`,
            `"bfloat16"`, `"float32"`).
        trust_remote_code: allow the model's own code from the Hub to run.
        quantization: the quantization method of the weights (e.g. `"awq"`, `"gptq"`,
            `"fp8"`), or `None`.
        revision: the model's revision (branch, tag or commit).
        tokenizer: the tokenizer id or path, when it differs from `model`.
        tokenizer_mode: `"auto"` (fast tokenizer when there is one) or `"slow"`; newer vLLM
            versions accept more modes (e.g. `"mistral"`).
        tokenizer_revision: the tokenizer's revision.
        skip_tokenizer_init: must stay `False` here: prompts are rendered and completions
            decoded with the tokenizer.
        chat_template: a Jinja chat template that replaces the tokenizer's.
        use_magpie_template: end the prompt of a conversation that does not end with a user
            message with `magpie_pre_query_template` (after the chat template is rendered),
            so the model writes the user's turn.
        magpie_pre_query_template: `"llama3"`, `"qwen2"` or the text that opens a user turn.
        seed: the seed of the engine's random number generator.
        extra_kwargs: any other `vllm.LLM` argument, e.g. `{"max_model_len": 4096,
            "gpu_memory_utilization": 0.8, "tensor_parallel_size": 2}`.
        cuda_devices: the GPUs vLLM may use: a list of indices, or `"auto"` (as many GPUs as
            `tensor_parallel_size` x `pipeline_parallel_size` that no other LLM of this
            process uses; nothing without CUDA). They are made visible to the engine through
            `CUDA_VISIBLE_DEVICES` while it starts. See `CudaDevicePlacementMixin`.

    Examples:
        ```python
        from potstill.llms import vLLM

        llm = vLLM(model="Qwen/Qwen2.5-0.5B-Instruct", extra_kwargs={"max_model_len": 2048})
        llm.load()
        llm.generate(inputs=[[{"role": "user", "content": "Hello!"}]], max_new_tokens=32)
        ```
    """

    dtype: str = "auto"
    quantization: Optional[str] = None
    revision: Optional[str] = None
    tokenizer_mode: str = "auto"
    tokenizer_revision: Optional[str] = None
    skip_tokenizer_init: bool = False
    seed: int = 0
    extra_kwargs: Optional[RuntimeParameter[Dict[str, Any]]] = Field(
        default_factory=dict,
        description="Additional dictionary of keyword arguments that will be passed to the "
        "`vLLM` class of `vllm` library. See all the supported arguments at: "
        "https://github.com/vllm-project/vllm/blob/main/vllm/entrypoints/llm.py",
    )
    structured_output_formats: ClassVar[tuple[str, ...]] = ("json", "regex")
    sdk_module: ClassVar[Optional[str]] = "vllm"

    @field_validator("skip_tokenizer_init")
    @classmethod
    def _needs_tokenizer(cls, value: bool) -> bool:
        if value:
            raise ValueError(
                "`skip_tokenizer_init=True` leaves vLLM without a tokenizer, so chat "
                "templates cannot be rendered nor completions decoded; leave it False"
            )
        return value

    def _load_model(self) -> None:
        """Starts the vLLM engine with the model (the slow part: weights, KV cache)."""
        from vllm import LLM as Engine  # type: ignore[import-not-found]

        self._assign_cuda_devices()
        with self.cuda_visible_devices_env():
            self._model = Engine(
                model=self.model,
                dtype=self.dtype,
                trust_remote_code=self.trust_remote_code,
                quantization=self.quantization,
                revision=self.revision,
                tokenizer=self.tokenizer,
                tokenizer_mode=self.tokenizer_mode,
                tokenizer_revision=self.tokenizer_revision,
                skip_tokenizer_init=self.skip_tokenizer_init,
                seed=self.seed,
                **(self.extra_kwargs or {}),
            )
        self._set_tokenizer(self._model.get_tokenizer())

    def _set_tokenizer(self, tokenizer: Any) -> None:
        """Adopts the tokenizer that renders prompts (vLLM's, once the engine runs)."""
        self._tokenizer = tokenizer
        self._chat_template = resolve_chat_template(tokenizer, self.chat_template)

    @property
    def _desired_num_gpus(self) -> int:
        extra = self.extra_kwargs or {}
        return int(extra.get("tensor_parallel_size") or 1) * int(
            extra.get("pipeline_parallel_size") or 1
        )

    def _release(self) -> None:
        """Shuts the engine down and frees its memory."""
        model, self._model, self._tokenizer = self._model, None, None
        self._release_cuda_devices()
        if model is not None:
            engine_core = getattr(getattr(model, "llm_engine", None), "engine_core", None)
            shutdown = getattr(engine_core, "shutdown", None)
            if callable(shutdown):
                with contextlib.suppress(Exception):
                    shutdown()
            del model
        gc.collect()
        with contextlib.suppress(Exception):
            from vllm.distributed.parallel_state import (  # type: ignore[import-not-found]
                cleanup_dist_env_and_memory,
            )

            cleanup_dist_env_and_memory()

    def prompt_token_ids(self, prompt: str) -> List[int]:
        """Tokenizes a rendered prompt without adding special tokens (the template has
        written those it wants).

        Args:
            prompt: the prompt from `prepare_input`.

        Returns:
            The token ids handed to the engine.
        """
        return list(self._tokenizer.encode(prompt, add_special_tokens=False))

    @validate_call
    def generate(  # type: ignore[override]
        self,
        inputs: List[ChatType],
        num_generations: PositiveInt = 1,
        max_new_tokens: PositiveInt = 128,
        presence_penalty: float = 0.0,
        frequency_penalty: float = 0.0,
        repetition_penalty: float = 1.0,
        temperature: NonNegativeFloat = 1.0,
        top_p: float = 1.0,
        top_k: int = -1,
        min_p: float = 0.0,
        logprobs: Optional[PositiveInt] = None,
        stop: Optional[Union[str, List[str]]] = None,
        stop_token_ids: Optional[List[int]] = None,
        include_stop_str_in_output: bool = False,
        skip_special_tokens: bool = True,
        logits_processors: Optional[List[Callable[..., Any]]] = None,
        extra_sampling_params: Optional[Dict[str, Any]] = None,
        echo: bool = False,
        structured_output: Optional[StructuredOutput] = None,
    ) -> List[GenerateOutput]:
        """Generates `num_generations` completions for each conversation, the batch at once.

        Args:
            inputs: the conversations.
            num_generations: the number of completions per conversation (vLLM's `n`).
            max_new_tokens: the maximum number of new tokens per completion (`max_tokens`).
            presence_penalty: penalizes tokens that already appeared in the completion.
            frequency_penalty: penalizes tokens by how often they already appeared.
            repetition_penalty: penalizes tokens that appeared in the prompt or completion
                (1.0 means none).
            temperature: the sampling temperature; 0 decodes greedily (deterministic, so
                its `num_generations` completions are copies of one).
            top_p: the nucleus sampling probability mass.
            top_k: the number of most likely tokens to sample from; -1 (or 0) disables it.
            min_p: the minimum probability of a token, relative to the most likely one.
            logprobs: how many most likely tokens to return the log probabilities of, per
                generated token.
            stop: strings that stop the generation.
            stop_token_ids: token ids that stop the generation.
            include_stop_str_in_output: keep the stop string at the end of the completion.
            skip_special_tokens: leave special tokens out of the decoded completion.
            logits_processors: per-request logits processors, for vLLM versions that
                accept them in `SamplingParams` (the V1 engine does not: give logits
                processor classes to the engine with `extra_kwargs` instead).
            extra_sampling_params: any other `SamplingParams` argument, e.g.
                `{"seed": 42, "min_tokens": 8}`.
            echo: prepend the prompt to each completion.
            structured_output: the request's structured output (potstill passes it; a
                direct call uses the `structured_output` field): decoding is constrained
                by vLLM's structured-output parameters.

        Returns:
            One list of completions per conversation, with the token usage.
        """
        if not inputs:
            return []
        from vllm import SamplingParams, sampling_params  # type: ignore[import-not-found]

        accepted = _sampling_params_fields(SamplingParams)
        spec = requested_output(self, structured_output)
        if spec is not None:
            extra_sampling_params = {
                **structured_output_params(spec, accepted, sampling_params),
                **(extra_sampling_params or {}),
            }
        sequences = num_generations if temperature > 0 else 1
        params = sampling_kwargs(
            n=sequences,
            max_new_tokens=max_new_tokens,
            presence_penalty=presence_penalty,
            frequency_penalty=frequency_penalty,
            repetition_penalty=repetition_penalty,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            min_p=min_p,
            logprobs=logprobs,
            stop=stop,
            stop_token_ids=stop_token_ids,
            include_stop_str_in_output=include_stop_str_in_output,
            skip_special_tokens=skip_special_tokens,
            logits_processors=logits_processors,
            extra_sampling_params=extra_sampling_params,
            accepted=accepted,
        )
        with self._model_lock:  # see `potstill.llms.local`
            prompts = [self.prepare_input(conversation) for conversation in inputs]
            requests = [{"prompt_token_ids": self.prompt_token_ids(p)} for p in prompts]
            outputs = self._model.generate(requests, SamplingParams(**params), use_tqdm=False)
        return [
            _generations(output, prompt if echo else "", num_generations, logprobs is not None)
            for output, prompt in zip(outputs, prompts)
        ]


def sampling_kwargs(
    *,
    n: int,
    max_new_tokens: int,
    logits_processors: Optional[List[Callable[..., Any]]] = None,
    extra_sampling_params: Optional[Dict[str, Any]] = None,
    accepted: Optional[set[str]] = None,
    **values: Any,
) -> dict[str, Any]:
    """The `SamplingParams` keyword arguments for potstill's generation kwargs.

    Args:
        n: completions per prompt.
        max_new_tokens: sent as `max_tokens`.
        logits_processors: per-request logits processors (omitted when `None`).
        extra_sampling_params: extra arguments, applied last (they win).
        accepted: the argument names this vLLM version's `SamplingParams` takes, to reject
            `logits_processors` with a clear message where it is not supported.
        **values: the other kwargs, under their `SamplingParams` names; `None` is omitted.

    Returns:
        The kwargs.
    """
    params: dict[str, Any] = {"n": n, "max_tokens": max_new_tokens}
    params.update({name: value for name, value in values.items() if value is not None})
    if logits_processors is not None:
        if accepted is not None and "logits_processors" not in accepted:
            raise PotstillUserError(
                "This vLLM version takes no per-request `logits_processors` (its V1 engine "
                "dropped them): pass logits processor classes to the engine with "
                "`extra_kwargs={'logits_processors': [...]}` instead."
            )
        params["logits_processors"] = logits_processors
    params.update(extra_sampling_params or {})
    return params


def structured_output_params(
    structured_output: StructuredOutput, accepted: set[str], module: Any
) -> dict[str, Any]:
    """The `SamplingParams` argument that constrains decoding to a structured output.

    Args:
        structured_output: a JSON schema (its objects closed: see
            `StructuredOutput.closed_schema`) or a regular expression.
        accepted: the argument names of this vLLM version's `SamplingParams`.
        module: `vllm.sampling_params`, where the parameter classes live.

    Returns:
        `{"structured_outputs": StructuredOutputsParams(...)}` (vLLM 0.10.2 and later) or
        `{"guided_decoding": GuidedDecodingParams(...)}` (earlier versions).

    Raises:
        PotstillUserError: for a vLLM version with neither.
    """
    if structured_output.format == "regex":
        values = {"regex": structured_output.schema}
    else:
        values = {"json": structured_output.closed_schema()}
    if "structured_outputs" in accepted:
        return {"structured_outputs": module.StructuredOutputsParams(**values)}
    if "guided_decoding" in accepted:
        return {"guided_decoding": module.GuidedDecodingParams(**values)}
    raise PotstillUserError(
        "This vLLM version has no structured-output parameters (`structured_outputs` or "
        "`guided_decoding` in `SamplingParams`): upgrade vLLM to use `structured_output`."
    )


def _sampling_params_fields(sampling_params: Any) -> set[str]:
    fields = getattr(sampling_params, "__dataclass_fields__", None) or getattr(
        sampling_params, "__struct_fields__", None
    )
    if fields is None:
        import inspect

        return set(inspect.signature(sampling_params).parameters)
    return set(fields)


def _generations(
    output: Any, echo_prompt: str, num_generations: int, logprobs: bool
) -> Generations:
    """Turns one `RequestOutput` into `Generations` (copied N times after greedy decoding)."""
    completions = sorted(output.outputs, key=lambda completion: completion.index)
    copies = max(num_generations // max(len(completions), 1), 1)
    texts = [echo_prompt + completion.text for completion in completions] * copies
    counts = [len(completion.token_ids) for completion in completions]
    return Generations(
        texts,
        input_tokens=[len(output.prompt_token_ids or [])] + [None] * (len(texts) - 1),
        output_tokens=counts + [None] * (len(texts) - len(counts)),
        logprobs=[_logprobs(completion) for completion in completions] * copies
        if logprobs
        else None,
    )


def _logprobs(completion: Any) -> Optional[list[dict[str, Any]]]:
    """Per generated token: `{"token", "logprob", "top_logprobs": [{"token", "logprob"}]}`."""
    positions = completion.logprobs
    if positions is None:
        return None
    result = []
    for token_id, candidates in zip(completion.token_ids, positions):
        candidates = candidates or {}
        chosen = candidates.get(token_id)
        ranked = sorted(candidates.values(), key=lambda item: item.rank or 0)
        result.append(
            {
                "token": getattr(chosen, "decoded_token", None),
                "logprob": getattr(chosen, "logprob", None),
                "top_logprobs": [
                    {"token": item.decoded_token, "logprob": item.logprob} for item in ranked
                ],
            }
        )
    return result
