"""Resume cost: a 10,000-row run killed halfway (kill -9) and resumed, against the same run
finished without the kill.

Run from the repository root: `python benchmarks/resume.py [--rows 10000] [--latency 0.02]`.
Each run is a separate process (`tests/reliability/resume_job.py`, concurrency 10) against
the loopback test server in another process. Prints the uninterrupted run's time, the resumed
run's time, and how many requests the kill cost (sent twice).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

from _server import ROOT, running_server, server_get, server_post


def run_job(url: str, cache_dir: str, rows: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.resume_job", f"{url}/v1", cache_dir, str(rows)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])},
    )


def timed(process: subprocess.Popen[str]) -> float:
    start = time.perf_counter()
    _, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(stderr)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.02)
    args = parser.parse_args()

    with running_server(args.latency) as url:
        with tempfile.TemporaryDirectory() as full_dir:
            full = timed(run_job(url, full_dir, args.rows))

        server_post(url, "/_control/reset", {})  # clears the counts (and the config)
        server_post(url, "/_control/config", {"latency_s": args.latency})
        with tempfile.TemporaryDirectory() as killed_dir:
            job = run_job(url, killed_dir, args.rows)
            while server_get(url, "/_control/stats")["request_count"] < args.rows // 2:
                time.sleep(0.01)
            job.send_signal(signal.SIGKILL)
            job.wait()
            sent_before = server_get(url, "/_control/stats")["request_count"]
            resumed = timed(run_job(url, killed_dir, args.rows))
            sent_total = server_get(url, "/_control/stats")["request_count"]

    print(f"rows: {args.rows}  server latency: {args.latency} s  concurrency: 10")
    print(f"uninterrupted run: {full:.2f} s")
    print(
        f"killed after {sent_before} requests; resumed run: {resumed:.2f} s ({resumed / full:.2f} of the full run)"
    )
    print(f"requests sent twice because of the kill: {sent_total - args.rows}")


if __name__ == "__main__":
    main()
