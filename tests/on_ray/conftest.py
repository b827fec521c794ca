"""A two-node Ray cluster on this machine for the tests marked `ray` (`pytest -m ray`) (1 CPU each; the second node
also declares 2 GPUs, which Ray hands out without any GPU being there: placement is tested,
not CUDA).

The cluster is started once per session with `ray.cluster_utils.Cluster`, in its own temp
dir, and shut down in `finally`. `ray stop` is never used: it kills every Ray process on the
machine, other users' too.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Set for the cluster's processes (they inherit the environment when they start): the
# workers import potstill and the tests' own step classes.
CLUSTER_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
    "POTSTILL_PROGRESS": "0",
}


@dataclass
class RayCluster:
    """The running cluster.

    Attributes:
        address: what `ray.init(address=...)` takes (drivers in subprocesses use it).
        temp_dir: Ray's temp dir (logs, sockets, spilled objects).
        head: the head node's id.
        gpu_node: the id of the node with the (declared) GPUs.
    """

    address: str
    temp_dir: Path
    head: str
    gpu_node: str
    cluster: Any

    def replace_gpu_node(self) -> None:
        """Removes the second node, as if its machine died, and adds a new one like it."""
        old = next(node for node in self.cluster.worker_nodes if node.node_id == self.gpu_node)
        self.cluster.remove_node(old, allow_graceful=False)
        self.gpu_node = _add_gpu_node(self.cluster)


def _add_gpu_node(cluster: Any) -> str:
    node = cluster.add_node(num_cpus=1, num_gpus=2)
    cluster.wait_for_nodes()
    return node.node_id


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    saved = {name: os.environ.get(name) for name in CLUSTER_ENV}
    os.environ.update(
        {
            **CLUSTER_ENV,
            "PYTHONPATH": os.pathsep.join(
                filter(None, [CLUSTER_ENV["PYTHONPATH"], saved["PYTHONPATH"]])
            ),
        }
    )
    # Short: Ray's unix sockets live under it (their paths are limited to ~100 bytes).
    temp_dir = Path(tempfile.mkdtemp(prefix="pst-ray-", dir="/tmp"))
    cluster = None
    try:
        cluster = Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": 1,
                "num_gpus": 0,
                "include_dashboard": False,
                "temp_dir": str(temp_dir),
            },
        )
        gpu_node = _add_gpu_node(cluster)
        ray.init(address=cluster.address, log_to_driver=False)
        yield RayCluster(cluster.address, temp_dir, cluster.head_node.node_id, gpu_node, cluster)
    finally:
        try:
            ray.shutdown()
        finally:
            if cluster is not None:
                cluster.shutdown()
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            shutil.rmtree(temp_dir, ignore_errors=True)
