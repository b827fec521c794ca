"""Tasks: steps that use an LLM."""

from potstill.steps.tasks.base import GeneratorTask, Task
from potstill.steps.tasks.generate_embeddings import GenerateEmbeddings
from potstill.steps.tasks.text_generation import ChatGeneration, TextGeneration

__all__ = ["ChatGeneration", "GenerateEmbeddings", "GeneratorTask", "Task", "TextGeneration"]
