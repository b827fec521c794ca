"""Tasks: steps that use an LLM."""

from potstill.steps.tasks.base import GeneratorTask, Task
from potstill.steps.tasks.complexity_scorer import ComplexityScorer
from potstill.steps.tasks.evol_complexity import EvolComplexity, EvolComplexityGenerator
from potstill.steps.tasks.evol_instruct import EvolInstruct, EvolInstructGenerator
from potstill.steps.tasks.evol_quality import EvolQuality
from potstill.steps.tasks.generate_embeddings import GenerateEmbeddings
from potstill.steps.tasks.genstruct import Genstruct
from potstill.steps.tasks.instruction_backtranslation import InstructionBacktranslation
from potstill.steps.tasks.magpie import Magpie, MagpieGenerator
from potstill.steps.tasks.prometheus_eval import PrometheusEval
from potstill.steps.tasks.quality_scorer import QualityScorer
from potstill.steps.tasks.self_instruct import SelfInstruct
from potstill.steps.tasks.structured_generation import StructuredGeneration
from potstill.steps.tasks.text_generation import ChatGeneration, TextGeneration
from potstill.steps.tasks.typing import ChatItem, ChatType
from potstill.steps.tasks.ultrafeedback import UltraFeedback

__all__ = [
    "ChatGeneration",
    "ChatItem",
    "ChatType",
    "ComplexityScorer",
    "EvolComplexity",
    "EvolComplexityGenerator",
    "EvolInstruct",
    "EvolInstructGenerator",
    "EvolQuality",
    "GenerateEmbeddings",
    "GeneratorTask",
    "Genstruct",
    "InstructionBacktranslation",
    "Magpie",
    "MagpieGenerator",
    "PrometheusEval",
    "QualityScorer",
    "SelfInstruct",
    "StructuredGeneration",
    "Task",
    "TextGeneration",
    "UltraFeedback",
]
