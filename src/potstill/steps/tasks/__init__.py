"""Tasks: steps that use an LLM."""

from potstill.steps.tasks.base import GeneratorTask, Task
from potstill.steps.tasks.evol_complexity import EvolComplexity, EvolComplexityGenerator
from potstill.steps.tasks.evol_instruct import EvolInstruct, EvolInstructGenerator
from potstill.steps.tasks.evol_quality import EvolQuality
from potstill.steps.tasks.generate_embeddings import GenerateEmbeddings
from potstill.steps.tasks.genstruct import Genstruct
from potstill.steps.tasks.instruction_backtranslation import InstructionBacktranslation
from potstill.steps.tasks.magpie import Magpie, MagpieGenerator
from potstill.steps.tasks.self_instruct import SelfInstruct
from potstill.steps.tasks.text_generation import ChatGeneration, TextGeneration

__all__ = [
    "ChatGeneration",
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
    "SelfInstruct",
    "Task",
    "TextGeneration",
]
