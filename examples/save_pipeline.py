"""Saves a pipeline as YAML for the command line (`examples/pipeline.yaml` is its output).

Run: `python examples/save_pipeline.py [PATH]`, then

    potstill pipeline info --config examples/pipeline.yaml
    potstill pipeline run --config examples/pipeline.yaml \\
        --param text_generation.llm.generation_kwargs.temperature=0.3 \\
        --output capitals-distiset

The API key is never written to the file: it comes from `OPENAI_API_KEY` or from
`--param text_generation.llm.api_key=...` when the pipeline runs.
"""

import sys

from potstill.llms import OpenAILLM
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration

with Pipeline(name="capitals", description="Asks an LLM for capitals.") as pipeline:
    load_dataset = LoadDataFromDicts(
        name="load_dataset",
        data=[
            {"instruction": "What's the capital of Spain?"},
            {"instruction": "What's the capital of France?"},
        ],
    )
    text_generation = TextGeneration(
        name="text_generation",
        llm=OpenAILLM(model="gpt-4o-mini", generation_kwargs={"max_new_tokens": 256}),
    )
    load_dataset >> text_generation

if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else "examples/pipeline.yaml"
    print(f"Saved to {pipeline.save(path, format='yaml')}")
