"""What the LLMs that run a model in this process share (`LlamaCppLLM`, `TransformersLLM`,
`vLLM`): loading and releasing the model, and one lock; and what `TransformersLLM` and `vLLM`
share besides (`ChatTemplateLLM`): a model from the Hub rendered with its chat template.

Loading: `load()` releases a model loaded before, runs `LLM.load`'s checks (the SDK is
installed...), then `_load_model()`. When that fails halfway, `_release()` frees what it had
acquired before the error goes on (and `LLM.load`'s wrapper marks the LLM as not loaded), so a
failed load never strands GPU memory. `unload()` releases too.

The lock: each LLM instance has one reentrant lock, `_model_lock` (declared on `LLM`), and
the model is only used while holding it, so one thread at a time uses it:

- `generate_outputs` (what tasks call, from their worker threads) holds it around each
  `generate` call: one instance may serve several tasks at once;
- a local model also takes it in `generate` itself and in `get_last_hidden_state` (direct
  calls from the user's threads, or a `GenerateEmbeddings` step beside a generating one), and
  in `load()` and `unload()`, so a model is never replaced or freed while a call uses it.

It is reentrant because `generate_outputs` takes it and then `generate` takes it again.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, Optional

from pydantic import PrivateAttr

from potstill.llms.base import LLM
from potstill.llms.chat_templates import renderer
from potstill.llms.mixins.cuda_device_placement import CudaDevicePlacementMixin
from potstill.llms.mixins.magpie import MagpieChatTemplateMixin
from potstill.typing import ChatType


class LocalLLM(LLM):
    """Base class for LLMs that run a model in this process (see the module docstring).

    Subclasses implement `model_name`, `generate`, `_load_model()` (which sets `_model`) and
    `_release()`, which must free whatever `_load_model()` acquired, even when it stopped
    halfway, and do nothing harmful when nothing is loaded. They hold `self._model_lock`
    wherever they use the model.
    """

    _model: Any = PrivateAttr(default=None)

    def load(self) -> None:
        """Loads the model (after freeing one loaded before)."""
        with self._model_lock:
            if self._model is not None:
                self._release()
            super().load()
            try:
                self._load_model()
            except BaseException:
                self._release()
                raise

    def unload(self) -> None:
        """Frees the model (and the memory it held)."""
        with self._model_lock:
            self._release()
        super().unload()

    @abstractmethod
    def _load_model(self) -> None:
        """Loads the model into `_model` (and what goes with it: tokenizer, devices...)."""

    @abstractmethod
    def _release(self) -> None:
        """Frees what `_load_model` acquired, however far it got."""


class ChatTemplateLLM(LocalLLM, CudaDevicePlacementMixin, MagpieChatTemplateMixin):
    """A local model from the Hugging Face Hub (or a folder) whose prompts are rendered with
    its tokenizer's chat template (see `potstill.llms.chat_templates`), on the GPUs that
    `CudaDevicePlacementMixin` assigns: what `TransformersLLM` and `vLLM` share.

    Subclasses set `_tokenizer` and `_chat_template` when they load (and clear them in
    `_release`).

    Attributes:
        model: the model id on the Hub, or the path of a local folder.
        trust_remote_code: allow the model's own code from the Hub to run.
        tokenizer: the tokenizer id or path, when it differs from `model`.
        chat_template: a Jinja chat template that replaces the tokenizer's.
    """

    model: str
    trust_remote_code: bool = False
    tokenizer: Optional[str] = None
    chat_template: Optional[str] = None

    _tokenizer: Any = PrivateAttr(default=None)
    _chat_template: Optional[str] = PrivateAttr(default=None)

    @property
    def model_name(self) -> str:
        """The `model` field."""
        return self.model

    def prepare_input(self, input: ChatType) -> str:
        """Renders one conversation into the prompt text the model continues.

        Args:
            input: the conversation.

        Returns:
            The prompt, rendered with the chat template and its generation prompt (or, with
            `use_magpie_template`, followed by the pre-query template).
        """
        if self._tokenizer is None:
            self._ensure_loaded("prepare_input")
        return self.magpie_prompt(input, renderer(self._tokenizer, self._chat_template or ""))
