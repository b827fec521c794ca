"""Evol-Complexity: Evol-Instruct's in-depth mutations only."""

from potstill.steps.tasks.evol_complexity.base import EvolComplexity
from potstill.steps.tasks.evol_complexity.generator import EvolComplexityGenerator

__all__ = ["EvolComplexity", "EvolComplexityGenerator"]
