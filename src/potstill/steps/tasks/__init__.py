"""Tasks: steps that use an LLM."""

from potstill.steps.tasks.base import GeneratorTask, Task
from potstill.steps.tasks.complexity_scorer import ComplexityScorer
from potstill.steps.tasks.generate_embeddings import GenerateEmbeddings
from potstill.steps.tasks.prometheus_eval import PrometheusEval
from potstill.steps.tasks.quality_scorer import QualityScorer
from potstill.steps.tasks.text_generation import ChatGeneration, TextGeneration
from potstill.steps.tasks.typing import ChatItem, ChatType
from potstill.steps.tasks.ultrafeedback import UltraFeedback

__all__ = [
    "ChatGeneration",
    "ChatItem",
    "ChatType",
    "ComplexityScorer",
    "GenerateEmbeddings",
    "GeneratorTask",
    "PrometheusEval",
    "QualityScorer",
    "Task",
    "TextGeneration",
    "UltraFeedback",
]
