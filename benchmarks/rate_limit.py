"""Throughput under a requests-per-minute limit against the loopback test server.

Run from the repository root: `python benchmarks/rate_limit.py [--rpm 3000] [--requests 500]
[--latency 0.1]`. The server (in a subprocess) records when each request arrives. Prints the
achieved rate against the limit and the busiest 1-second and 10-second windows. Target: within
5% of the limit, never above.
"""

from __future__ import annotations

import argparse
import time

from _server import running_server, server_get, text_generation_pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rpm", type=float, default=3000.0)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()

    with running_server(args.latency) as url:
        with text_generation_pipeline(
            "rate-limit",
            url,
            args.requests,
            max_concurrent_requests=args.concurrency,
            requests_per_minute=args.rpm,
        ) as pipeline:
            start = time.perf_counter()
            pipeline.run(use_cache=False)
            wall = time.perf_counter() - start
        requests = server_get(url, "/_control/requests")
        busiest_1s = server_get(url, "/_control/stats?window=1")["max_requests_in_window"]
        busiest_10s = server_get(url, "/_control/stats?window=10")["max_requests_in_window"]

    starts = sorted(r["start"] for r in requests)
    span = starts[-1] - starts[0]
    achieved = (len(starts) - 1) / span * 60  # starts per minute between first and last
    per_second = args.rpm / 60
    print(
        f"limit: {args.rpm:.0f} requests/min ({per_second:.1f}/s), {len(starts)} requests, wall {wall:.2f} s"
    )
    print(f"achieved: {achieved:.0f} requests/min = {achieved / args.rpm:.3f} of the limit")
    print(f"busiest 1 s window: {busiest_1s} requests (limit {per_second:.1f} + 1 at the edge)")
    print(f"busiest 10 s window: {busiest_10s} requests (limit {10 * per_second:.0f} + 1)")


if __name__ == "__main__":
    main()
