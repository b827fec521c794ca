"""The replicas of one step: started, fed, restarted, stopped.

A `ReplicaPool` is what the engine's node of a step calls instead of processing a batch in
its own process (`StepNode.remote`). Each batch goes to the replica with the fewest batches
in flight; the driver keeps deciding which batches run, in what order they are passed on, and
what is stored, exactly as in a local run.

A replica that dies (a crash, the OOM killer, its node lost) is restarted by Ray (on another
node when its node is gone), and the batches it had in flight run again once it answers. They
run again *alone* on a replica: a batch whose replica dies while it runs alone is retried at
most `MAX_BATCH_RETRIES` times, then its rows fail with the error in `potstill_metadata` and
the run goes on, so a batch that always kills its worker (a "poison batch") cannot loop, nor
cost the batches that shared its replica their retries.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from potstill.errors import ReplicaDiedError
from potstill.pipeline.ray.placement import ReplicaPlan, plan_replicas
from potstill.pipeline.ray.replica import StepReplica
from potstill.typing import Row

if TYPE_CHECKING:
    from potstill.pipeline.node import StepNode
    from potstill.pipeline.ray.run import RayRun

logger = logging.getLogger("potstill.pipeline")

MAX_BATCH_RETRIES = 3
"""How often a batch that killed its replica while running alone is tried again."""
_RECOVERY_WAIT_S = 300.0  # how long a replica may stay unreachable (a node being replaced)


@dataclass
class _Replica:
    handle: Any
    index: int
    pid: int = 0  # of the process running it (a new one after a restart)
    node_id: str = ""
    in_flight: int = 0
    alone: bool = False  # running a batch that must run alone


class ReplicaPool:
    """The replicas of one step (the node's `remote`).

    Args:
        run: the run's shared services.
        node: the step's node in the engine.
        first_node: where the round-robin over the cluster's nodes starts for this step.
    """

    def __init__(self, run: RayRun, node: StepNode, first_node: int) -> None:
        self.run = run
        self.node = node
        self.name = node.name
        self.first_node = first_node
        self.replicas: list[_Replica] = []
        self.placement_groups: list[Any] = []
        self._changed: Optional[asyncio.Condition] = None
        self._waiting_alone = 0

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Starts the replicas and loads the step on each (a load error names the step)."""
        import ray

        setups = await self.run.replica_setups(self)
        plans = plan_replicas(self.node.step, self.run.nodes(), self.first_node)
        for note in plans[0].notes if plans else []:
            logger.warning(note)
        # cloudpickle: classes defined in the driver's script (`__main__`) travel by value.
        payload = ray.cloudpickle.dumps(self.node.step)
        actor = ray.remote(StepReplica)
        for index, (plan, setup) in enumerate(zip(plans, setups)):
            options = await self._actor_options(plan, index)
            handle = actor.options(**options).remote(payload, setup)
            self.replicas.append(_Replica(handle, index))
        try:
            where = await asyncio.gather(*(r.handle.ready.remote() for r in self.replicas))
        except Exception as error:
            raise _unwrap(error) from None
        for replica, place in zip(self.replicas, where):
            replica.pid, replica.node_id = place["pid"], place["node_id"]
        self.run.replicas_started(self, where)
        logger.info(
            "Step %r runs on %d replica(s) (on %d node(s)).",
            self.name,
            len(self.replicas),
            len({place["node_id"] for place in where}),
        )

    async def _actor_options(self, plan: ReplicaPlan, index: int) -> dict[str, Any]:
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import (
            NodeAffinitySchedulingStrategy,
            PlacementGroupSchedulingStrategy,
        )

        options: dict[str, Any] = {
            **plan.options,
            "name": f"potstill-{self.run.pipeline_name}-{self.name}-{index}-{self.run.run_id}",
            "max_restarts": -1,  # a replica that dies is restarted...
            "max_task_retries": 0,  # ...and the pool decides what runs again (see above)
            "max_concurrency": max(self.node.max_in_flight, 1) + 8,  # + control calls
        }
        if plan.bundles is not None:
            group = placement_group(plan.bundles, strategy=plan.strategy)
            self.placement_groups.append(group)
            await group.ready()
            options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                group, placement_group_bundle_index=0, placement_group_capture_child_tasks=True
            )
        elif plan.node_id is not None:
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(plan.node_id, soft=True)
        return options

    async def stop(self) -> None:
        """Unloads the step on every replica, then ends them."""
        import ray
        from ray.util.placement_group import remove_placement_group

        results = await asyncio.gather(
            *(replica.handle.stop.remote() for replica in self.replicas), return_exceptions=True
        )
        for result in results:
            if isinstance(result, Exception):
                logger.warning("Step %r failed to unload on a replica: %s", self.name, result)
        for replica in self.replicas:
            ray.kill(replica.handle, no_restart=True)
        for group in self.placement_groups:
            remove_placement_group(group)
        self.replicas, self.placement_groups = [], []

    # -- batches ---------------------------------------------------------------------------

    async def process(self, data: list[list[Row]], offset: int) -> list[Row]:
        """Processes a batch on a replica (see the module docstring for deaths)."""
        from ray.exceptions import ActorDiedError, RayActorError, RayTaskError

        alone, deaths = False, 0
        while True:
            replica = await self._take(alone)
            try:
                return await replica.handle.process.remote(data, offset)
            except RayTaskError as error:  # the step raised: the engine handles it as usual
                raise _unwrap(error) from None
            except ActorDiedError as error:  # cannot be restarted: nothing to retry on
                raise ReplicaDiedError(self._gone(error)) from None
            except RayActorError:  # unreachable: dead (Ray restarts it) or its node lost
                restarted = await self._recovered(replica)
                if alone and restarted:
                    deaths += 1
                if deaths > MAX_BATCH_RETRIES:
                    raise ReplicaDiedError(
                        f"the replica running this batch died {deaths} times while the "
                        "batch ran alone on it (a crash, a segfault or the out-of-memory "
                        "killer); the batch is not tried again"
                    ) from None
                logger.warning(
                    "Step %r: a replica died while processing rows %d-%d; they run again%s.",
                    self.name,
                    offset,
                    offset + (len(data[0]) if data else 0) - 1,
                    f" (attempt {deaths + 1} alone)" if alone else ", alone on a replica",
                )
                alone = True
            finally:
                await self._give_back(replica)

    async def _recovered(self, replica: _Replica) -> bool:
        """Waits until a replica that could not be reached answers again (Ray restarts a
        dead one, on another node if its node is lost); whether it was restarted."""
        from ray.exceptions import ActorDiedError, RayActorError

        deadline = asyncio.get_running_loop().time() + _RECOVERY_WAIT_S
        pause = 0.1
        while True:
            try:
                place = await replica.handle.ready.remote()
                break
            except ActorDiedError as error:
                raise ReplicaDiedError(self._gone(error)) from None
            except RayActorError:
                if asyncio.get_running_loop().time() > deadline:
                    raise ReplicaDiedError(
                        f"a replica of step {self.name!r} has been unreachable for "
                        f"{_RECOVERY_WAIT_S:g} s"
                    ) from None
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
        restarted = place["pid"] != replica.pid or place["node_id"] != replica.node_id
        replica.pid, replica.node_id = place["pid"], place["node_id"]
        return restarted

    def _gone(self, error: BaseException) -> str:
        return f"the replica of step {self.name!r} is gone and cannot be restarted: {error}"

    async def _take(self, alone: bool) -> _Replica:
        """The least busy replica; for a batch that must run alone, an idle one (batches
        that must run alone go first)."""
        if self._changed is None:
            self._changed = asyncio.Condition()
        async with self._changed:
            self._waiting_alone += alone
            try:
                while True:
                    replica = self._pick(alone)
                    if replica is not None:
                        replica.in_flight += 1
                        replica.alone = alone
                        return replica
                    await self._changed.wait()
            finally:
                self._waiting_alone -= alone

    def _pick(self, alone: bool) -> Optional[_Replica]:
        free = [replica for replica in self.replicas if not replica.alone]
        if alone:
            return next((replica for replica in free if replica.in_flight == 0), None)
        if self._waiting_alone or not free:
            return None
        return min(free, key=lambda replica: replica.in_flight)

    async def _give_back(self, replica: _Replica) -> None:
        assert self._changed is not None
        async with self._changed:
            replica.in_flight -= 1
            replica.alone = False
            self._changed.notify_all()


def _unwrap(error: BaseException) -> BaseException:
    """The exception a replica raised, without Ray's wrapper (when it survived pickling)."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, BaseException) else error
