"""The `potstill` command line: run and inspect pipelines saved as YAML or JSON.

`potstill pipeline run --config FILE [--param step.llm.generation_kwargs.temperature=0.3 ...]`
and `potstill pipeline info --config FILE`. The entry point is `potstill.cli.app:main`.
"""
