"""Steps that format generations for fine-tuning (SFT) and preference tuning (DPO)."""

from potstill.steps.formatting.dpo import FormatChatGenerationDPO, FormatTextGenerationDPO
from potstill.steps.formatting.sft import FormatChatGenerationSFT, FormatTextGenerationSFT

__all__ = [
    "FormatChatGenerationDPO",
    "FormatChatGenerationSFT",
    "FormatTextGenerationDPO",
    "FormatTextGenerationSFT",
]
