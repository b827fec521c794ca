"""Tasks: steps that use an LLM."""

from potstill.steps.tasks.base import GeneratorTask, Task
from potstill.steps.tasks.generate_embeddings import GenerateEmbeddings
from potstill.steps.tasks.text_generation import ChatGeneration, TextGeneration
from potstill.steps.tasks.typing import ChatItem, ChatType

__all__ = [
    "ChatGeneration",
    "ChatItem",
    "ChatType",
    "GenerateEmbeddings",
    "GeneratorTask",
    "Task",
    "TextGeneration",
]
