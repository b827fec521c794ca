"""Engine overhead: rows through `LoadDataFromDicts >> TextGeneration` with an LLM that
answers instantly, so everything measured is potstill's own cost.

Run: `python benchmarks/pipeline_overhead.py [--rows 10000 100000] [--batch-size 50]
[--progress]`. Each row count runs in a fresh process (so its first run pays the one-time
imports, e.g. `datasets`, `pyarrow` and `pandas`) and is run twice there; the script prints
rows/s for both runs and the process's peak memory (RSS). Targets on a 2-core machine: at
least 15,000 rows/s on the first run of 10,000 rows, at least 30,000 rows/s on 100,000 rows,
peak RSS at most 250 MB (distilabel 1.5.3: about 400 rows/s and 650 MB on 10,000 rows).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any


def run_case(rows: int, batch_size: int, progress: bool) -> None:
    """Runs the pipeline twice over `rows` rows in this process and prints the figures."""
    # Imported here: the one-time imports of potstill itself are not part of a run.
    from potstill.llms.testing import TestLLM
    from potstill.pipeline import Pipeline
    from potstill.steps import LoadDataFromDicts
    from potstill.steps.tasks import TextGeneration

    data: list[dict[str, Any]] = [{"instruction": f"instruction {i}"} for i in range(rows)]
    with tempfile.TemporaryDirectory() as cache_dir:
        with Pipeline(name="overhead", cache_dir=cache_dir, show_progress=progress) as pipeline:
            load = LoadDataFromDicts(data=data, batch_size=batch_size)
            # `TestLLM` answers at once, without I/O: what is measured is potstill's own cost.
            llm = TestLLM(model="instant", keep_requests=False)
            generate = TextGeneration(llm=llm, input_batch_size=batch_size)
            load >> generate
        # The first run in a process also pays one-time imports (pyarrow, pandas, datasets);
        # the second shows the steady cost. Both are printed.
        for label in ("first run (cold imports)", "second run (warm)"):
            start = time.perf_counter()
            distiset = pipeline.run(use_cache=False)
            rows_out = distiset["default"]["train"].num_rows
            elapsed = time.perf_counter() - start
            assert rows_out == rows, f"expected {rows} rows, got {rows_out}"
            del distiset
            print(f"  {label}: {rows} rows in {elapsed:.2f} s = {rows / elapsed:,.0f} rows/s")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak memory (RSS): {peak_mb:.0f} MB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--progress", action="store_true", help="show the progress display")
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.in_process:
        run_case(args.rows[0], args.batch_size, args.progress)
        return
    for rows in args.rows:
        print(f"{rows:,} rows, batch size {args.batch_size}:", flush=True)
        command = [sys.executable, __file__, "--in-process", "--rows", str(rows)]
        command += ["--batch-size", str(args.batch_size)] + (["--progress"] * args.progress)
        subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
