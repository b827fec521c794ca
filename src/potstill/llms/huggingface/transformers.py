"""`TransformersLLM`: a local causal LM run in-process with Hugging Face `transformers`."""

from __future__ import annotations

import gc
import os
from typing import Any, ClassVar, Dict, List, Optional, Union

from pydantic import Field, PositiveInt, PrivateAttr, SecretStr, validate_call

from potstill.errors import PotstillUserError
from potstill.llms.chat_templates import resolve_chat_template
from potstill.llms.huggingface.constrained_decoding import (
    GrammarLogitsProcessor,
    grammar_for,
    llguidance_tokenizer,
)
from potstill.llms.local import ChatTemplateLLM
from potstill.llms.structured import StructuredOutput, requested_output
from potstill.llms.typing import GenerateOutput, Generations, HiddenState
from potstill.typing import ChatType
from potstill.utils.imports import require


class TransformersLLM(ChatTemplateLLM):
    """A causal language model from the Hugging Face Hub (or a local folder), run with
    `transformers` in this process.

    Each call generates for the whole batch at once: the prompts are rendered with the
    tokenizer's chat template (the `chat_template` field replaces it; a tokenizer without
    one gets ChatML), left-padded, and passed to `model.generate`. `num_generations` uses
    `num_return_sequences`. Token usage is counted locally: the prompt's tokens (padding
    excluded) and, per generation, the tokens generated up to and including the first EOS.
    A `structured_output` (JSON schema or regular expression) constrains decoding with
    llguidance (see `potstill.llms.huggingface.constrained_decoding`; it needs a fast
    tokenizer).

    Attributes:
        model: the model id on the Hub, or the path of a local folder.
        revision: the model's revision (branch, tag or commit).
        torch_dtype: the dtype to load the weights in (`"auto"`: the one in the config),
            e.g. `"float16"` or `"bfloat16"`.
        trust_remote_code: allow the model's own code from the Hub to run.
        model_kwargs: extra kwargs for `AutoModelForCausalLM.from_pretrained`.
        tokenizer: the tokenizer id or path, when it differs from `model`.
        use_fast: use the fast (Rust) tokenizer.
        chat_template: a Jinja chat template that replaces the tokenizer's.
        use_magpie_template: end the prompt of a conversation that does not end with a user
            message with `magpie_pre_query_template` (after the chat template is rendered),
            so the model writes the user's turn.
        magpie_pre_query_template: `"llama3"`, `"qwen2"` or the text that opens a user turn.
        device: where to run (`"cpu"`, `"cuda:0"`, `"mps"`, or a CUDA index; `-1` is CPU);
            `"cuda"` means the GPU(s) `cuda_devices` assigns.
        device_map: an accelerate device map (e.g. `"auto"`) to spread a large model over
            devices; it wins over `device`.
        token: the Hugging Face token for gated or private models; defaults to `$HF_TOKEN`.
        cuda_devices: the GPUs the model may use when `device` is unset or `"cuda"` and
            `device_map` is unset: a list of indices, or `"auto"` (a GPU that no other LLM of
            this process uses; the CPU without CUDA). See `CudaDevicePlacementMixin`.

    Examples:
        ```python
        from potstill.llms import TransformersLLM

        llm = TransformersLLM(model="HuggingFaceTB/SmolLM2-135M-Instruct")
        llm.load()
        llm.generate(inputs=[[{"role": "user", "content": "Hello!"}]], max_new_tokens=32)
        ```
    """

    revision: str = "main"
    torch_dtype: str = "auto"
    model_kwargs: Optional[Dict[str, Any]] = None
    use_fast: bool = True
    device: Optional[Union[str, int]] = None
    device_map: Optional[Union[str, Dict[str, Any]]] = None
    token: Optional[SecretStr] = Field(  # type: ignore[assignment]
        default_factory=lambda: os.getenv("HF_TOKEN"),
        description="The Hugging Face token for gated or private models.",
    )
    structured_output_formats: ClassVar[tuple[str, ...]] = ("json", "regex")
    sdk_module: ClassVar[Optional[str]] = "transformers"
    sdk_extra: ClassVar[Optional[str]] = "transformers"

    _grammar_tokenizer: Any = PrivateAttr(default=None)

    def _load_model(self) -> None:
        """Loads the tokenizer and the model (from the Hub cache or a local folder)."""
        require("torch", "transformers")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        token = self._secret("token")
        self._tokenizer = AutoTokenizer.from_pretrained(
            self.tokenizer or self.model,
            revision=self.revision,
            use_fast=self.use_fast,
            trust_remote_code=self.trust_remote_code,
            token=token,
        )
        self._chat_template = resolve_chat_template(self._tokenizer, self.chat_template)
        self._tokenizer.padding_side = "left"  # generated tokens then all start at one column
        if self._tokenizer.pad_token is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token

        device, placement = self._placement()
        if "device_map" in placement:
            require("accelerate", "transformers")  # transformers needs it for device maps
        kwargs: dict[str, Any] = {
            "revision": self.revision,
            "trust_remote_code": self.trust_remote_code,
            "token": token,
            _dtype_kwarg(): _torch_dtype(self.torch_dtype),
            **placement,
            **(self.model_kwargs or {}),
        }
        model = AutoModelForCausalLM.from_pretrained(self.model, **kwargs)
        if device is not None:
            model = model.to(device)  # type: ignore[arg-type]
        model.eval()
        self._model = model

    def _placement(self) -> tuple[Optional[str], dict[str, Any]]:
        """Where the model goes: a device to move it to, or `from_pretrained` kwargs
        (`device_map`, `max_memory`) that place it, from the fields and the GPUs there."""
        if self.device_map is not None:
            return None, {"device_map": self.device_map}
        if self.device is not None and self.device != "cuda":
            if isinstance(self.device, int):
                return ("cpu" if self.device < 0 else f"cuda:{self.device}"), {}
            return self.device, {}
        devices = self._assign_cuda_devices()
        if not devices:
            if self.device == "cuda":
                raise PotstillUserError(
                    f"TransformersLLM {self.model!r}: `device='cuda'` but no CUDA device is "
                    "available. Leave `device` unset to run on the CPU."
                )
            return None, {}
        if len(devices) == 1:
            return f"cuda:{devices[0]}", {}
        import torch

        # Spread over the assigned GPUs only: accelerate uses the devices in `max_memory`.
        free = {index: torch.cuda.mem_get_info(index)[0] for index in devices}
        return None, {"device_map": "auto", "max_memory": free}

    def _release(self) -> None:
        """Frees the model and the tokenizer (and the GPU memory they held)."""
        self._model = None
        self._tokenizer = None
        self._grammar_tokenizer = None
        self._release_cuda_devices()
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass

    @validate_call
    def generate(  # type: ignore[override]
        self,
        inputs: List[ChatType],
        num_generations: PositiveInt = 1,
        max_new_tokens: PositiveInt = 128,
        temperature: float = 0.1,
        repetition_penalty: float = 1.1,
        top_p: float = 1.0,
        top_k: int = 0,
        do_sample: bool = True,
        structured_output: Optional[StructuredOutput] = None,
    ) -> List[GenerateOutput]:
        """Generates `num_generations` texts for each conversation, the batch at once.

        Args:
            inputs: the conversations.
            num_generations: the number of generations per conversation (sent to
                `model.generate` as `num_return_sequences`).
            max_new_tokens: the maximum number of new tokens the model will generate.
            temperature: the sampling temperature (used only when `do_sample` is true).
            repetition_penalty: the penalty for repeated tokens (1.0 means none).
            top_p: the nucleus sampling probability mass (used only when sampling).
            top_k: the number of most likely tokens to sample from; 0 disables it (used only
                when sampling).
            do_sample: sample (true) or decode greedily (false). Greedy decoding is
                deterministic, so its `num_generations` generations are copies of one.
            structured_output: the request's structured output (potstill passes it; a
                direct call uses the `structured_output` field): decoding is constrained to
                its JSON schema or regular expression with llguidance.

        Returns:
            One list of generations per conversation, with the token usage.
        """
        if not inputs:
            return []
        import torch

        with self._model_lock, torch.inference_mode():  # see `potstill.llms.local`
            prompts = [self.prepare_input(conversation) for conversation in inputs]
            # Greedy decoding is deterministic: one sequence per prompt, copied N times.
            sequences = num_generations if do_sample else 1
            options: dict[str, Any] = {
                "max_new_tokens": max_new_tokens,
                "repetition_penalty": repetition_penalty,
                "do_sample": do_sample,
                "num_return_sequences": sequences,
                "pad_token_id": self._tokenizer.pad_token_id,
            }
            if do_sample:
                options.update(temperature=temperature, top_p=top_p, top_k=top_k)
            encoded = self._encode(prompts)
            spec = requested_output(self, structured_output)
            if spec is not None:
                options["logits_processor"] = self._constraint(
                    spec, len(prompts) * sequences, encoded["input_ids"].shape[1]
                )
            output = self._model.generate(**encoded, **options)
            generated = output[:, encoded["input_ids"].shape[1] :].tolist()
            stops = _eos_ids(self._model, self._tokenizer)
            counts = [_generated_length(ids, stops) for ids in generated]
            texts = self._tokenizer.batch_decode(
                [ids[:count] for ids, count in zip(generated, counts)], skip_special_tokens=True
            )
            prompt_tokens = encoded["attention_mask"].sum(dim=1).tolist()
        results: List[GenerateOutput] = []
        for index, prompt_count in enumerate(prompt_tokens):
            rows = slice(index * sequences, (index + 1) * sequences)
            copies = num_generations // sequences
            results.append(
                Generations(
                    texts[rows] * copies,
                    # Usage is reported once per token actually processed.
                    input_tokens=[int(prompt_count)] + [None] * (num_generations - 1),
                    output_tokens=counts[rows] + [None] * (num_generations - sequences),
                )
            )
        return results

    def _constraint(self, spec: StructuredOutput, sequences: int, prompt_length: int) -> Any:
        """The logits processors that keep a batch's sequences within `spec`."""
        from transformers import LogitsProcessorList

        if self._grammar_tokenizer is None:
            vocab_size = self._model.get_output_embeddings().weight.shape[0]
            stops = _eos_ids(self._model, self._tokenizer)
            self._grammar_tokenizer = llguidance_tokenizer(self._tokenizer, vocab_size, stops)
        processor = GrammarLogitsProcessor(
            self._grammar_tokenizer, grammar_for(spec), sequences, prompt_length
        )
        return LogitsProcessorList([processor])

    def get_last_hidden_state(self, inputs: List[ChatType]) -> List[HiddenState]:
        """The last hidden state of the base model for each conversation's prompt.

        Args:
            inputs: the conversations (rendered with the chat template, as for `generate`).

        Returns:
            One float32 array of shape `(num_tokens, hidden_size)` per conversation, with
            the padding removed (its last row is the prompt's last token).
        """
        self._ensure_loaded("get_last_hidden_state")
        if not inputs:
            return []
        import torch

        with self._model_lock, torch.inference_mode():
            prompts = [self.prepare_input(conversation) for conversation in inputs]
            # Right padding: every prompt keeps positions 0..n-1 (models with absolute
            # position embeddings would otherwise shift), and causal attention keeps the
            # trailing padding from touching the real tokens.
            encoded = self._encode(prompts, padding_side="right")
            states = _last_hidden_states(self._model, encoded).float().cpu()
        mask = encoded["attention_mask"].bool().cpu()
        return [states[index][mask[index]].numpy() for index in range(len(prompts))]

    def _encode(self, prompts: list[str], padding_side: str = "left") -> dict[str, Any]:
        # The chat template already wrote the special tokens (BOS...) it wants.
        self._tokenizer.padding_side = padding_side
        try:
            encoded = self._tokenizer(
                prompts, return_tensors="pt", padding=True, add_special_tokens=False
            )
        finally:
            self._tokenizer.padding_side = "left"
        device = self._model.device
        return {
            "input_ids": encoded["input_ids"].to(device),
            "attention_mask": encoded["attention_mask"].to(device),
        }


def _last_hidden_states(model: Any, encoded: dict[str, Any]) -> Any:
    """The last layer's hidden states, from the base model (no LM head) when it exposes
    one, else from the full model's `hidden_states`."""
    base = getattr(model, "base_model", None)
    if base is not None and base is not model:
        output = base(**encoded)
        if getattr(output, "last_hidden_state", None) is not None:
            return output.last_hidden_state
    return model(**encoded, output_hidden_states=True).hidden_states[-1]


def _torch_dtype(name: str) -> Any:
    if name == "auto":
        return "auto"
    import torch

    value = getattr(torch, name.removeprefix("torch."), None)
    if not isinstance(value, torch.dtype):
        raise PotstillUserError(
            f"TransformersLLM: unknown `torch_dtype` {name!r}; use 'auto' or a torch dtype "
            "name such as 'float32', 'float16' or 'bfloat16'."
        )
    return value


def _dtype_kwarg() -> str:
    """`dtype` from transformers 4.56 on (`torch_dtype` is deprecated there)."""
    import transformers

    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    configured = getattr(model.generation_config, "eos_token_id", None)
    if configured is None:
        configured = tokenizer.eos_token_id
    if configured is None:
        return set()
    return {configured} if isinstance(configured, int) else set(configured)


def _generated_length(ids: list[int], stops: set[int]) -> int:
    """Tokens generated up to and including the first stop token (padding follows it)."""
    for position, token in enumerate(ids):
        if token in stops:
            return position + 1
    return len(ids)
