"""potstill: build datasets with LLMs.

The public API lives in the sub-packages: `potstill.llms`, `potstill.steps`,
`potstill.steps.tasks`, `potstill.pipeline` and `potstill.distiset`.
"""

__version__ = "0.1.0"
