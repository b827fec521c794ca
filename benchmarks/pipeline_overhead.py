"""Engine overhead: 10,000 rows through `LoadDataFromDicts >> TextGeneration` with an LLM
that answers instantly, so everything measured is potstill's own cost.

Run: `python benchmarks/pipeline_overhead.py [--rows 10000] [--batch-size 50] [--progress]`
Prints rows/s and the process's peak memory (RSS). Target on a 2-core machine: at least
10,000 rows/s and under 250 MB (distilabel 1.5.3: about 260 rows/s and 650 MB).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from typing import Any

from potstill.llms.testing import TestLLM
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--progress", action="store_true", help="show the progress display")
    args = parser.parse_args()

    data: list[dict[str, Any]] = [{"instruction": f"instruction {i}"} for i in range(args.rows)]
    with tempfile.TemporaryDirectory() as cache_dir:
        with Pipeline(
            name="overhead", cache_dir=cache_dir, show_progress=args.progress
        ) as pipeline:
            load = LoadDataFromDicts(data=data, batch_size=args.batch_size)
            # `TestLLM` answers at once, without I/O: what is measured is potstill's own cost.
            llm = TestLLM(model="instant", keep_requests=False)
            generate = TextGeneration(llm=llm, input_batch_size=args.batch_size)
            load >> generate
        # The first run in a process also pays one-time imports (pyarrow, pandas, datasets);
        # the second shows the steady cost. Both are printed.
        for label in ("first run (cold imports)", "second run (warm)"):
            start = time.perf_counter()
            distiset = pipeline.run(use_cache=False)
            elapsed = time.perf_counter() - start
            rows = distiset["default"]["train"].num_rows
            assert rows == args.rows, f"expected {args.rows} rows, got {rows}"
            print(f"{label}: {rows} rows in {elapsed:.2f} s = {rows / elapsed:,.0f} rows/s")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (RSS): {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
