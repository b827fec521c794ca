"""Evol-Instruct: evolving instructions with an LLM (WizardLM)."""

from potstill.steps.tasks.evol_instruct.base import EvolInstruct
from potstill.steps.tasks.evol_instruct.generator import EvolInstructGenerator

__all__ = ["EvolInstruct", "EvolInstructGenerator"]
