"""Steps: the nodes of a pipeline."""

from potstill.steps.base import GeneratorStep, GlobalStep, Step
from potstill.steps.combine import CombineColumns, GroupColumns
from potstill.steps.conversation import ConversationTemplate
from potstill.steps.decorator import step
from potstill.steps.deita import DeitaFiltering
from potstill.steps.expand import ExpandColumns
from potstill.steps.formatting import (
    FormatChatGenerationDPO,
    FormatChatGenerationSFT,
    FormatTextGenerationDPO,
    FormatTextGenerationSFT,
)
from potstill.steps.generators.data import LoadDataFromDicts
from potstill.steps.generators.huggingface import (
    LoadDataFromDisk,
    LoadDataFromFileSystem,
    LoadDataFromHub,
    LoadHubDataset,
)
from potstill.steps.globals.huggingface import PushToHub
from potstill.steps.keep import KeepColumns
from potstill.steps.merge import MergeColumns
from potstill.steps.resources import StepResources
from potstill.steps.typing import GeneratorStepOutput, StepInput, StepOutput

__all__ = [
    "CombineColumns",
    "ConversationTemplate",
    "DeitaFiltering",
    "ExpandColumns",
    "FormatChatGenerationDPO",
    "FormatChatGenerationSFT",
    "FormatTextGenerationDPO",
    "FormatTextGenerationSFT",
    "GeneratorStep",
    "GeneratorStepOutput",
    "GlobalStep",
    "GroupColumns",
    "KeepColumns",
    "LoadDataFromDicts",
    "LoadDataFromDisk",
    "LoadDataFromFileSystem",
    "LoadDataFromHub",
    "LoadHubDataset",
    "MergeColumns",
    "PushToHub",
    "Step",
    "StepInput",
    "StepOutput",
    "StepResources",
    "step",
]
