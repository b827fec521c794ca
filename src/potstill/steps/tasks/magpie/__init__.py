"""Magpie: instructions and conversations written by an instruct model from nothing."""

from potstill.steps.tasks.magpie.base import Magpie
from potstill.steps.tasks.magpie.generator import MagpieGenerator

__all__ = ["Magpie", "MagpieGenerator"]
