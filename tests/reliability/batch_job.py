"""A pipeline whose generation step sends its requests as a provider batch job, run as a
separate process by the batch-job tests so it can be killed while the job is pending.

Usage: python -m tests.reliability.batch_job BASE_URL CACHE_DIR ROWS
Prints one JSON line with the output rows when it completes.
"""

from __future__ import annotations

import json
import sys

from potstill.llms import OpenAILLM
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration


def build(base_url: str, cache_dir: str, rows: int) -> Pipeline:
    """`q0..qN` >> a `TextGeneration` whose `OpenAILLM` sends one batch job, checked every
    50 ms."""
    with Pipeline(name="batch-job", cache_dir=cache_dir, show_progress=False) as pipeline:
        load = LoadDataFromDicts(
            data=[{"instruction": f"q{i}"} for i in range(rows)], batch_size=rows
        )
        llm = OpenAILLM(
            model="test-model",
            base_url=base_url,
            api_key="test-key",
            use_offline_batch_generation=True,
            offline_batch_generation_block_until_done=0.05,
        )
        load >> TextGeneration(name="generate", llm=llm, input_batch_size=rows)
    return pipeline


def main() -> None:
    base_url, cache_dir, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
    train = build(base_url, cache_dir, rows).run()["default"]["train"]
    print(
        json.dumps(
            {"instruction": list(train["instruction"]), "generation": list(train["generation"])}
        )
    )


if __name__ == "__main__":
    main()
