"""`GenerateEmbeddings`: an embedding per text from an LLM's last hidden state."""

from __future__ import annotations

from potstill.errors import PotstillUserError
from potstill.llms.base import LLM
from potstill.steps.base import Step
from potstill.steps.tasks.base import LoadsLLM
from potstill.steps.typing import StepColumns, StepInput, StepOutput
from potstill.typing import ChatType, Row


class GenerateEmbeddings(LoadsLLM, Step):
    """Embeds each `text` with the hidden state of its last token.

    Input columns: `text` (a string or a conversation). Output columns: `embedding` (a
    list of floats) and `model_name`. The LLM must implement `get_last_hidden_state`.

    Attributes:
        llm: the LLM whose hidden states give the embeddings.
    """

    llm: LLM

    @property
    def inputs(self) -> StepColumns:
        """`text`."""
        return ["text"]

    @property
    def outputs(self) -> StepColumns:
        """`embedding` and `model_name`."""
        return ["embedding", "model_name"]

    def format_input(self, input: Row) -> ChatType:
        """A string becomes a user message; a conversation is used as is."""
        text = input.get("text")
        if isinstance(text, str):
            return [{"role": "user", "content": text}]
        if isinstance(text, list) and all(isinstance(m, dict) for m in text):
            return text  # type: ignore[return-value]
        raise PotstillUserError(
            f"GenerateEmbeddings {self.name!r}: column `text` must be a string or a "
            f"conversation, got {type(text).__name__}."
        )

    def process(self, inputs: StepInput) -> StepOutput:
        """Adds `embedding` and `model_name` to each row.

        Args:
            inputs: rows with a `text` column.

        Yields:
            The rows with their embeddings.
        """
        formatted = [self.format_input(row) for row in inputs]
        hidden_states = self.llm.get_last_hidden_state(formatted)
        model_name = self.llm.model_name
        yield [
            {**row, "embedding": state[-1].tolist(), "model_name": model_name}
            for row, state in zip(inputs, hidden_states)
        ]
