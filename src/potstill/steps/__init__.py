"""Steps: the nodes of a pipeline."""

from potstill.steps.base import GeneratorStep, GlobalStep, Step
from potstill.steps.decorator import step
from potstill.steps.generators.data import LoadDataFromDicts
from potstill.steps.typing import GeneratorStepOutput, StepInput, StepOutput

__all__ = [
    "GeneratorStep",
    "GeneratorStepOutput",
    "GlobalStep",
    "LoadDataFromDicts",
    "Step",
    "StepInput",
    "StepOutput",
    "step",
]
