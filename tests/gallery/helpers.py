"""Scripted in-process LLMs for the instruction-task tests, and the loopback OpenAILLM.

`ScriptedLLM` (synchronous, batched) and `AsyncScriptedLLM` answer each conversation with a
function of it, so a test decides every answer (a rewrite, garbage, a failure) and sees every
conversation the task sent.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional

from pydantic import PrivateAttr, validate_call
from tests.fake_server import FakeServer

from potstill.llms import LLM, AsyncLLM, OpenAILLM
from potstill.llms.mixins.magpie import MagpieChatTemplateMixin
from potstill.llms.typing import GenerateOutput, Generations
from potstill.typing import ChatType

Reply = Callable[[ChatType], Optional[str]]
"""Conversation -> answer text, or `None` for a failed generation."""


def last_text(conversation: ChatType) -> str:
    """The content of the last message."""
    return conversation[-1]["content"] if conversation else ""


def echo(conversation: ChatType) -> Optional[str]:
    """Answers with the last message's text."""
    return f"Echo: {last_text(conversation)}"


def _generations(reply: Optional[Reply], conversation: ChatType) -> Generations:
    text = (reply or echo)(conversation)
    if text is None:
        return Generations.failed(1, "scripted failure")
    return Generations.from_request([text], input_tokens=2, output_tokens=3)


class ScriptedLLM(LLM, MagpieChatTemplateMixin):
    """A synchronous LLM whose answers come from `reply` (see `scripted`)."""

    model: str = "scripted"

    _reply: Optional[Reply] = PrivateAttr(default=None)  # None: echo
    _calls: list[list[ChatType]] = PrivateAttr(default_factory=list)

    @property
    def model_name(self) -> str:
        return self.model

    @property
    def calls(self) -> list[list[ChatType]]:
        """The batches of conversations `generate` got."""
        return self._calls

    @property
    def conversations(self) -> list[ChatType]:
        """Every conversation sent, in order."""
        return [conversation for batch in self._calls for conversation in batch]

    @validate_call
    def generate(
        self, inputs: List[ChatType], num_generations: int = 1, temperature: float = 1.0
    ) -> List[GenerateOutput]:
        """Answers each conversation with the scripted reply.

        Args:
            inputs: the conversations.
            num_generations: how many (all the same).
            temperature: unused.

        Returns:
            One answer per conversation.
        """
        self._calls.append([list(conversation) for conversation in inputs])
        return [
            Generations.concat(_generations(self._reply, c) for _ in range(num_generations))
            for c in inputs
        ]


class AsyncScriptedLLM(AsyncLLM, MagpieChatTemplateMixin):
    """An asynchronous LLM whose answers come from `reply`."""

    model: str = "scripted-async"

    _reply: Optional[Reply] = PrivateAttr(default=None)  # None: echo
    _sent: list[ChatType] = PrivateAttr(default_factory=list)

    @property
    def model_name(self) -> str:
        return self.model

    @property
    def conversations(self) -> list[ChatType]:
        """Every conversation sent, in the order the requests started."""
        return self._sent

    @validate_call
    async def agenerate(self, input: ChatType, temperature: float = 1.0) -> GenerateOutput:
        """Answers one conversation with the scripted reply.

        Args:
            input: the conversation.
            temperature: unused.

        Returns:
            The answer.
        """
        self._sent.append(list(input))
        return _generations(self._reply, input)


def scripted(llm_class: type, reply: Reply = echo, **fields: Any) -> Any:
    """A loaded scripted LLM of `llm_class` answering with `reply`."""
    llm = llm_class(**fields)
    llm._reply = reply
    llm.load()
    return llm


def loopback_llm(server: FakeServer, **fields: Any) -> OpenAILLM:
    """An OpenAILLM (the real `openai` SDK) pointed at the loopback server."""
    fields.setdefault("retry_backoff", 0.01)
    return OpenAILLM(
        model="test-model", base_url=server.openai_base_url, api_key="test-key", **fields
    )
