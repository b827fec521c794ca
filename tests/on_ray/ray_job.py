"""A pipeline run on the test cluster by a driver process of its own, so it can be killed.

Usage: python -m tests.on_ray.ray_job RAY_ADDRESS BASE_URL CACHE_DIR ROWS
Prints one JSON line with the output rows when it completes.
"""

from __future__ import annotations

import json
import sys

from potstill.llms import OpenAILLM
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration

MAX_CONCURRENT = 10
# Batches much larger than the concurrency: most answered requests belong to batches still
# in flight at a kill, so only the journal keeps them from being sent again.
BATCH = 100


def main() -> None:
    address, base_url, cache_dir, rows = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    with Pipeline(name="ray-job", cache_dir=cache_dir, show_progress=False) as pipeline:
        load = LoadDataFromDicts(
            data=[{"instruction": f"q{i}"} for i in range(rows)], batch_size=BATCH
        )
        llm = OpenAILLM(
            model="test-model",
            base_url=base_url,
            api_key="test-key",
            max_concurrent_requests=MAX_CONCURRENT,
        )
        load >> TextGeneration(name="generate", llm=llm, input_batch_size=BATCH)
    distiset = pipeline.ray(ray_head_node_url=address).run(
        params={"generate": {"resources": {"replicas": 2}}}
    )
    train = distiset["default"]["train"]
    print(
        json.dumps(
            {"instruction": list(train["instruction"]), "generation": list(train["generation"])}
        )
    )


if __name__ == "__main__":
    main()
