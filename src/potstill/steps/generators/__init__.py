"""Generator steps: where a pipeline's rows come from."""

from potstill.steps.generators.data import LoadDataFromDicts

__all__ = ["LoadDataFromDicts"]
