"""Evol-Quality: evolving responses with an LLM (Deita)."""

from potstill.steps.tasks.evol_quality.base import EvolQuality

__all__ = ["EvolQuality"]
