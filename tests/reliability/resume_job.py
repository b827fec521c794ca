"""A pipeline run as a separate process by the resume tests, so it can be killed.

Usage: python -m tests.reliability.resume_job BASE_URL CACHE_DIR ROWS
Prints one JSON line with the output rows when it completes.
"""

from __future__ import annotations

import json
import sys

from potstill.llms import OpenAILLM
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration


def main() -> None:
    base_url, cache_dir, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with Pipeline(name="resume-job", cache_dir=cache_dir, show_progress=False) as pipeline:
        load = LoadDataFromDicts(
            data=[{"instruction": f"q{i}"} for i in range(rows)], batch_size=10
        )
        llm = OpenAILLM(
            model="test-model", base_url=base_url, api_key="test-key", max_concurrent_requests=10
        )
        load >> TextGeneration(llm=llm, input_batch_size=10)
    train = pipeline.run()["default"]["train"]
    print(
        json.dumps(
            {"instruction": list(train["instruction"]), "generation": list(train["generation"])}
        )
    )


if __name__ == "__main__":
    main()
