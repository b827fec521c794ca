"""One pipeline run on Ray: the replica pools of its steps and what they share.

The engine stays on the driver, unchanged (order, alignment, back-pressure, the run's store,
the `Distiset`); generators run there too. Every other step gets a `ReplicaPool` as its
node's `remote`. Shared by the pools of a run:

- one `StoreSink` actor on the driver's node, for the steps that keep LLM answers (tasks);
- one `LimiterActor` per LLM instance that has requests/tokens-per-minute limits or runs on
  more than one replica;
- each LLM instance's `max_concurrent_requests`, split between all the replicas that use it
  (the limit holds for the whole cluster, like the other limits).
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from potstill.llms.async_llm import AsyncLLM
from potstill.llms.base import LLM
from potstill.llms.cache import default_response_cache_dir
from potstill.pipeline.ray.limiter import LimiterActor, llm_limits
from potstill.pipeline.ray.placement import NodeInfo, replica_count, step_llms
from potstill.pipeline.ray.pool import ReplicaPool
from potstill.pipeline.ray.replica import LLMSetup, ReplicaSetup
from potstill.pipeline.ray.store_sink import StoreSink
from potstill.steps.base import GeneratorStep, _Step
from potstill.steps.tasks.base import _Task

if TYPE_CHECKING:
    from potstill.pipeline.engine import Engine

logger = logging.getLogger("potstill.pipeline")

# Batches in flight per replica for a step that processes one batch at a time: one running and
# three queued, so the replica's thread does not wait for the round trips to the driver (the
# local engine, without round trips, keeps two).
_BATCHES_PER_REPLICA = 4


class RayRun:
    """The Ray side of one run (see the module docstring).

    Args:
        engine: the run's engine; its non-generator nodes get replica pools.
        pipeline_name: names the actors.
        use_response_cache: the pipeline's `use_response_cache`.
    """

    def __init__(self, engine: Engine, pipeline_name: str, use_response_cache: bool) -> None:
        self.pipeline_name = pipeline_name
        self.run_id = os.urandom(3).hex()
        self.use_response_cache = use_response_cache
        self.pools: dict[str, ReplicaPool] = {}
        self._sink: Any = None
        self._limiters: dict[int, Any] = {}  # id(llm) -> its LimiterActor
        self._users: dict[int, int] = {}  # id(llm) -> replicas that use it
        self._shares_given: dict[int, int] = {}
        self._starting: Optional[asyncio.Lock] = None
        self._started = False
        self._nodes: Optional[list[NodeInfo]] = None
        for node in engine.nodes.values():
            if isinstance(node.step, GeneratorStep):
                continue
            pool = ReplicaPool(self, node, first_node=len(self.pools))
            node.remote = pool
            count = replica_count(node.step)
            node.max_in_flight = max(node.max_in_flight, _BATCHES_PER_REPLICA * count)
            self.pools[node.name] = pool
            for _, llm in step_llms(node.step):
                self._users[id(llm)] = self._users.get(id(llm), 0) + count

    def nodes(self) -> list[NodeInfo]:
        """The cluster's alive nodes (read once per run)."""
        if self._nodes is None:
            import ray

            self._nodes = [
                NodeInfo(node["NodeID"], dict(node.get("Resources") or {}))
                for node in ray.nodes()
                if node.get("Alive")
            ]
        return self._nodes

    # -- shared services -------------------------------------------------------------------

    async def _start_services(self) -> None:
        """Starts the sink and the limiters (once, by the first pool that starts)."""
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._started:
                return
            self._started = True
            import ray
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            here = NodeAffinitySchedulingStrategy(
                ray.get_runtime_context().get_node_id(), soft=False
            )
            if any(isinstance(pool.node.step, _Task) for pool in self.pools.values()):
                self._sink = (
                    ray.remote(StoreSink)
                    .options(num_cpus=0, scheduling_strategy=here, name=self._name("store"))
                    .remote()
                )
            for pool in self.pools.values():
                for _, llm in step_llms(pool.node.step):
                    if id(llm) in self._limiters or not isinstance(llm, AsyncLLM):
                        continue
                    limits = llm_limits(llm)
                    if any(limits) or self._users[id(llm)] > 1:
                        self._limiters[id(llm)] = (
                            ray.remote(LimiterActor)
                            .options(
                                num_cpus=0,
                                scheduling_strategy=here,
                                name=self._name(f"limits-{len(self._limiters)}"),
                            )
                            .remote(limits)
                        )

    def _name(self, what: str) -> str:
        return f"potstill-{self.pipeline_name}-{what}-{self.run_id}"

    async def replica_setups(self, pool: ReplicaPool) -> list[ReplicaSetup]:
        """What each replica of `pool` needs besides its step (see `ReplicaSetup`)."""
        await self._start_services()
        step = pool.node.step
        sink = self._sink if isinstance(step, _Task) else None
        if sink is not None:
            await sink.open_journal.remote(pool.name, str(pool.node.batches.journal_path))
        return [
            ReplicaSetup(
                step_name=pool.name,
                uses_async=pool.node.uses_async,
                sink=sink,
                llms=tuple(
                    self._llm_setup(step, field, llm, sink is not None)
                    for field, llm in step_llms(step)
                ),
            )
            for _ in range(replica_count(step))
        ]

    def _llm_setup(self, step: _Step, field: str, llm: LLM, keeps_answers: bool) -> LLMSetup:
        concurrency = None
        if isinstance(llm, AsyncLLM):
            concurrency = self._concurrency_share(llm)
        cache_path = None
        cached = llm.use_response_cache or (self.use_response_cache and field == "llm")
        if keeps_answers and cached:
            folder = llm.response_cache_dir or default_response_cache_dir()
            cache_path = str(Path(folder) / "responses.jsonl")
        return LLMSetup(
            field=field,
            concurrency=concurrency,
            limiter=self._limiters.get(id(llm)),
            limited=any(llm_limits(llm)) if isinstance(llm, AsyncLLM) else False,
            cache_path=cache_path,
        )

    def _concurrency_share(self, llm: AsyncLLM) -> int:
        """This replica's part of the LLM's `max_concurrent_requests`: the limit is split
        between every replica that uses the LLM (each gets at least 1)."""
        users, total = self._users[id(llm)], llm.max_concurrent_requests or 1
        given = self._shares_given.get(id(llm), 0)
        self._shares_given[id(llm)] = given + 1
        if given == 0 and users > total:
            logger.warning(
                "%s: %d replicas use this LLM, more than its max_concurrent_requests=%d; each "
                "replica sends 1 request at a time (%d in all).",
                type(llm).__name__,
                users,
                total,
                users,
            )
        return max(1, total // users + (1 if given % users < total % users else 0))

    def replicas_started(self, pool: ReplicaPool, where: list[dict[str, Any]]) -> None:
        """Tells the limiters of the pool's LLMs about its replicas (for 429 pauses)."""
        entries = [
            (place["actor_id"], replica.handle) for place, replica in zip(where, pool.replicas)
        ]
        for field, llm in step_llms(pool.node.step):
            limiter = self._limiters.get(id(llm))
            if limiter is not None:
                limiter.register.remote(entries, field)

    async def close(self) -> None:
        """Closes the sink's files and ends the shared actors."""
        import ray

        if self._sink is not None:
            try:
                await self._sink.close.remote()
            except Exception as error:  # closing must not hide the run's outcome
                logger.warning("Could not close the run's answer files: %s", error)
        for actor in [self._sink, *self._limiters.values()]:
            if actor is not None:
                ray.kill(actor, no_restart=True)
        self._sink, self._limiters = None, {}
