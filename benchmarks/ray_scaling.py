"""Scaling on Ray: the same pipelines on a two-node Ray cluster started on this machine
(1 CPU per node, `ray.cluster_utils.Cluster`), against the local engine.

Prints:

1. CPU-bound step throughput with 1 and 2 replicas (`cpus=1` each, so one per node). The step
   does a fixed amount of arithmetic per row (about 1.3 ms on an idle core). Target: 2
   replicas at least 1.7x one replica on an otherwise idle 2-core machine. Rates are taken
   between the first batch's start and the last batch's end on the replicas (the replicas'
   start-up is printed apart, in the wall time).
2. LLM-bound throughput: `TextGeneration` on `OpenAILLM` against the test server (answers
   after `--latency` s) with 1, 2 and 4 replicas, 16 requests in flight per replica
   (`max_concurrent_requests` is shared by the replicas, so it is set to 16 x replicas),
   against the ideal 16 x replicas / latency. Rates from the server's own clock.
3. Limit fidelity: `requests_per_minute` on 2 and 4 replicas: the achieved rate and the
   busiest 1-second window, against the limit (one limiter for all replicas).
4. Overhead: a no-op step on Ray (1 replica) against the local engine at batch 50: rows/s
   between the first and the last batch it processes, and for the whole run (on Ray, the
   replica's start-up included).

Run from the repository root: `python benchmarks/ray_scaling.py [--cpu-rows 4000]
[--llm-rows 1600] [--latency 0.05] [--rpm 1200] [--noop-rows 20000] [--server-cpu N]`.
The machine's load average is printed with each part: on a shared machine the figures move.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _server import ROOT, server_get, server_post, start_server
from potstill.mixins.runtime_parameters import RuntimeParameter
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts, StepInput, step
from potstill.steps.typing import StepOutput


@step(inputs=["x"], outputs=["started", "ended"])
def Burn(inputs: StepInput, work: RuntimeParameter[int] = 0) -> StepOutput:
    """A fixed amount of arithmetic per row; notes when the batch started and ended."""
    started = time.time()
    for row in inputs:
        total = 0
        for i in range(work):
            total += i * i
        row["burnt"] = total
    ended = time.time()
    yield [{**row, "started": started, "ended": ended} for row in inputs]


@step(inputs=["x"], outputs=["stamp"])
def Noop(inputs: StepInput) -> StepOutput:
    """Passes its rows on, noting when."""
    stamp = time.time()
    yield [{**row, "stamp": stamp} for row in inputs]


def calibrate(seconds_per_row: float) -> int:
    """The iterations of `Burn`'s loop that take about `seconds_per_row` here."""
    iterations = 10_000
    while True:
        started = time.perf_counter()
        total = 0
        for i in range(iterations):
            total += i * i
        elapsed = time.perf_counter() - started
        if elapsed > 0.05:
            return max(1, int(iterations * seconds_per_row / elapsed))
        iterations *= 2


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


@contextlib.contextmanager
def cluster() -> Iterator[Any]:
    """Two nodes of 1 CPU each on this machine, shut down at the end (never `ray stop`)."""
    import ray
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH")])
    )
    temp_dir = tempfile.mkdtemp(prefix="pst-bench-", dir="/tmp")
    made = None
    try:
        made = Cluster(
            initialize_head=True,
            head_node_args={"num_cpus": 1, "include_dashboard": False, "temp_dir": temp_dir},
        )
        made.add_node(num_cpus=1)
        made.wait_for_nodes()
        ray.init(address=made.address, log_to_driver=False)
        yield made
    finally:
        try:
            ray.shutdown()
        finally:
            if made is not None:
                made.shutdown()
            shutil.rmtree(temp_dir, ignore_errors=True)


def timed(run: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = run()
    return result, time.perf_counter() - started


def cpu_bound(rows: int, cache: Path) -> None:
    work = calibrate(0.0013)
    print(f"\n1. CPU-bound step ({rows} rows, {work} iterations per row, batch 50); {load()}")
    rates = {}
    for replicas in (1, 2):
        with Pipeline(name=f"burn-{replicas}", cache_dir=cache, show_progress=False) as pipeline:
            source = LoadDataFromDicts(data=[{"x": i} for i in range(rows)], batch_size=50)
            source >> Burn(name="burn", work=work, input_batch_size=50)
        params = {"burn": {"resources": {"replicas": replicas, "cpus": 1}}}
        distiset, wall = timed(lambda p=pipeline, q=params: p.ray().run(params=q, use_cache=False))
        train = distiset["default"]["train"]
        busy = max(train["ended"]) - min(train["started"])
        rates[replicas] = rows / busy
        print(
            f"   {replicas} replica(s): {rates[replicas]:,.0f} rows/s "
            f"(wall {wall:.2f} s with start-up)"
        )
    print(f"   speed-up with 2 replicas: {rates[2] / rates[1]:.2f}x (target >= 1.7x, idle machine)")


def llm_bound(url: str, rows: int, latency: float, cache: Path) -> None:
    from potstill.llms import OpenAILLM
    from potstill.steps.tasks import TextGeneration

    print(f"\n2. LLM-bound ({rows} requests, {latency} s each, 16 in flight per replica); {load()}")
    for replicas in (1, 2, 4):
        server_post(url, "/_control/reset", {})
        server_post(url, "/_control/config", {"latency_s": latency})
        with Pipeline(name=f"llm-{replicas}", cache_dir=cache, show_progress=False) as pipeline:
            source = LoadDataFromDicts(
                data=[{"instruction": f"question {i}"} for i in range(rows)], batch_size=50
            )
            llm = OpenAILLM(
                model="bench",
                base_url=f"{url}/v1",
                api_key="test-key",
                max_concurrent_requests=16 * replicas,
            )
            source >> TextGeneration(name="generate", llm=llm, input_batch_size=50)
        params = {"generate": {"resources": {"replicas": replicas}}}
        _, wall = timed(lambda p=pipeline, q=params: p.ray().run(params=q, use_cache=False))
        requests = server_get(url, "/_control/requests")
        busy = max(r["end"] for r in requests) - min(r["start"] for r in requests)
        rate, ideal = len(requests) / busy, 16 * replicas / latency
        print(
            f"   {replicas} replica(s): {rate:,.0f} rows/s, ideal {ideal:,.0f} "
            f"({rate / ideal:.0%}); wall {wall:.2f} s with start-up"
        )


def limit_fidelity(url: str, rpm: float, cache: Path) -> None:
    from potstill.llms import OpenAILLM
    from potstill.steps.tasks import TextGeneration

    per_second = rpm / 60
    requests_count = int(per_second * 10)
    print(f"\n3. Limit fidelity (requests_per_minute={rpm:g}, {requests_count} requests); {load()}")
    for replicas in (2, 4):
        server_post(url, "/_control/reset", {})
        server_post(url, "/_control/config", {"latency_s": 0.05})
        with Pipeline(name=f"rpm-{replicas}", cache_dir=cache, show_progress=False) as pipeline:
            source = LoadDataFromDicts(
                data=[{"instruction": f"question {i}"} for i in range(requests_count)]
            )
            llm = OpenAILLM(
                model="bench",
                base_url=f"{url}/v1",
                api_key="test-key",
                max_concurrent_requests=64,
                requests_per_minute=rpm,
            )
            source >> TextGeneration(name="generate", llm=llm, input_batch_size=10)
        pipeline.ray().run(
            params={"generate": {"resources": {"replicas": replicas}}}, use_cache=False
        )
        starts = sorted(r["start"] for r in server_get(url, "/_control/requests"))
        achieved = (len(starts) - 1) / (starts[-1] - starts[0])
        busiest = server_get(url, "/_control/stats?window=1")["max_requests_in_window"]
        print(
            f"   {replicas} replicas: {achieved:.2f} requests/s for a limit of "
            f"{per_second:.2f} ({achieved / per_second:.1%}); busiest 1-s window {busiest} "
            f"(limit {per_second:.0f} + 1; {replicas} limiters of their own would allow "
            f"{replicas * per_second:.0f})"
        )


def overhead(rows: int, cache: Path) -> None:
    print(f"\n4. Overhead of a no-op step ({rows} rows, batch 50); {load()}")
    with Pipeline(name="noop", cache_dir=cache, show_progress=False) as pipeline:
        source = LoadDataFromDicts(data=[{"x": i} for i in range(rows)], batch_size=50)
        source >> Noop(name="noop", input_batch_size=50)
    pipeline.run(use_cache=False)  # one-time imports (pyarrow, datasets) paid here
    for label, run in (
        ("local engine", lambda: pipeline.run(use_cache=False)),
        ("Ray, 1 replica", lambda: pipeline.ray().run(use_cache=False)),
    ):
        distiset, wall = timed(run)
        stamps = distiset["default"]["train"]["stamp"]
        steady = rows / (max(stamps) - min(stamps))
        print(
            f"   {label}: {steady:,.0f} rows/s between the first and the last batch; "
            f"{rows / wall:,.0f} rows/s for the whole run ({wall:.2f} s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-rows", type=int, default=4000)
    parser.add_argument("--llm-rows", type=int, default=1600)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--rpm", type=float, default=1200.0)
    parser.add_argument("--noop-rows", type=int, default=20_000)
    parser.add_argument(
        "--server-cpu", type=int, default=None, help="pin the test server to this CPU (taskset)"
    )
    args = parser.parse_args()

    os.environ["POTSTILL_PROGRESS"] = "0"
    process, url = start_server(args.latency)
    try:
        if args.server_cpu is not None and shutil.which("taskset"):
            os.system(f"taskset -pc {args.server_cpu} {process.pid} > /dev/null")
        with tempfile.TemporaryDirectory() as cache, cluster():
            print(f"Ray cluster: 2 nodes x 1 CPU on this machine; {load()}")
            cpu_bound(args.cpu_rows, Path(cache))
            llm_bound(url, args.llm_rows, args.latency, Path(cache))
            limit_fidelity(url, args.rpm, Path(cache))
            overhead(args.noop_rows, Path(cache))
    finally:
        process.terminate()
        process.wait()


if __name__ == "__main__":
    sys.exit(main())
