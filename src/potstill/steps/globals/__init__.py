"""Global steps: steps that see all the rows at once."""

from potstill.steps.globals.huggingface import PushToHub

__all__ = ["PushToHub"]
