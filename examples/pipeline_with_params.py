"""A pipeline whose runtime parameters are given to `run`.

`params=` (or distilabel's `parameters=`) maps step names to their runtime parameters; the
LLM's `generation_kwargs` given there are merged over the ones given to its constructor.

Needs `pip install -e ".[openai]"` and `OPENAI_API_KEY`.
Run: `python examples/pipeline_with_params.py`.
"""

from potstill.llms import OpenAILLM
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration

with Pipeline(name="capitals") as pipeline:
    load_dataset = LoadDataFromDicts(
        name="load_dataset",
        data=[
            {"instruction": "What's the capital of Spain?"},
            {"instruction": "What's the capital of France?"},
            {"instruction": "What is 2 + 2?"},
        ],
    )
    text_generation = TextGeneration(
        name="text_generation",
        llm=OpenAILLM(model="gpt-4o-mini", generation_kwargs={"max_new_tokens": 256}),
        num_generations=2,
    )
    load_dataset >> text_generation

if __name__ == "__main__":
    distiset = pipeline.run(
        params={
            load_dataset.name: {"batch_size": 2},
            text_generation.name: {
                "input_batch_size": 2,
                "llm": {"generation_kwargs": {"temperature": 0.3}},
            },
        },
    )
    dataset = distiset["default"]["train"]
    print(dataset)
    for row in dataset:
        print(f"{row['instruction']} -> {row['generation']}")
    # {'max_new_tokens': 256, 'temperature': 0.3}: merged, not replaced.
    print(text_generation.llm.generation_kwargs)
    distiset.save_to_disk("capitals-distiset")
