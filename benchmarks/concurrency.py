"""Concurrency: 2,000 requests through a pipeline with OpenAILLM against the loopback test
server, which answers each request after 100 ms; `max_concurrent_requests=100`.

The ideal wall time is 2,000 / 100 * 0.1 s = 2.0 s. Target: within 1.3x of ideal.

Run from the repository root: `python benchmarks/concurrency.py [--requests 2000]
[--concurrency 100] [--latency 0.1] [--import-first openai datasets]`. The server runs in a
subprocess, so its CPU use does not count against the client.
"""

from __future__ import annotations

import argparse
import importlib
import time

from _server import running_server, server_get, text_generation_pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument(
        "--import-first",
        nargs="*",
        default=[],
        metavar="MODULE",
        help="modules to import before the first run (e.g. openai datasets), to measure "
        "what their import costs the first run",
    )
    args = parser.parse_args()
    for module in args.import_first:
        importlib.import_module(module)

    with running_server(args.latency) as url:
        with text_generation_pipeline(
            "concurrency", url, args.requests, max_concurrent_requests=args.concurrency
        ) as pipeline:
            # The first run in a process also pays one-time imports (the SDK, pyarrow,
            # pandas, datasets); the second shows the steady cost. Both are printed.
            walls = []
            for _ in range(2):
                start = time.perf_counter()
                distiset = pipeline.run(use_cache=False)
                walls.append(time.perf_counter() - start)
        rows = distiset["default"]["train"]
        failed = sum(1 for generation in rows["generation"] if generation is None)
        stats = server_get(url, "/_control/stats")
    ideal = args.requests / args.concurrency * args.latency
    print(f"requests: {args.requests}  concurrency: {args.concurrency}  latency: {args.latency} s")
    for label, wall in zip(("first run (cold imports)", "second run (warm)"), walls):
        print(f"{label}: wall {wall:.2f} s, ideal {ideal:.2f} s, ratio {wall / ideal:.2f}x")
    print(f"failed generations: {failed}  server peak concurrency: {stats.get('peak_concurrency')}")


if __name__ == "__main__":
    main()
