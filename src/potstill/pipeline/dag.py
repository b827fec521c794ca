"""The graph of steps: names, edges, order. Plain dicts of lists, no graph library."""

from __future__ import annotations

from graphlib import TopologicalSorter
from typing import TYPE_CHECKING, Any

from potstill.errors import PipelineValidationError

if TYPE_CHECKING:
    from potstill.pipeline.routing_batch_function import RoutingBatchFunction
    from potstill.steps.base import _Step


class DAG:
    """Steps by name and the edges between them, kept acyclic as edges are added."""

    def __init__(self) -> None:
        self.steps: dict[str, _Step] = {}
        self._successors: dict[str, list[str]] = {}
        self._predecessors: dict[str, list[str]] = {}
        self._routing: dict[str, RoutingBatchFunction] = {}

    @property
    def names(self) -> set[str]:
        """The names of the steps."""
        return set(self.steps)

    def add_step(self, step: _Step) -> None:
        """Adds a step; names must be unique."""
        name = step.name
        assert name is not None
        if name in self.steps and self.steps[name] is not step:
            raise PipelineValidationError(
                f"A step named {name!r} already exists in this pipeline; give each step a "
                "unique `name` (or leave it out to have one inferred)."
            )
        self.steps[name] = step
        self._successors.setdefault(name, [])
        self._predecessors.setdefault(name, [])

    def add_edge(self, source: str, target: str) -> None:
        """Connects `source` to `target`, refusing unknown steps, duplicates and cycles."""
        for name in (source, target):
            if name not in self.steps:
                raise PipelineValidationError(
                    f"Step {name!r} is not part of this pipeline; create it inside the same "
                    "`with Pipeline(...)` block before connecting it."
                )
        if target in self._successors[source]:
            raise PipelineValidationError(f"Step {source!r} is already connected to {target!r}.")
        path = self._path(target, source)
        if source == target or path:
            cycle = " >> ".join([source, *(path or [target])])
            raise PipelineValidationError(
                f"Connecting {source!r} >> {target!r} would create a cycle ({cycle}). "
                "Pipelines must be acyclic: remove one of these connections."
            )
        self._successors[source].append(target)
        self._predecessors[target].append(source)

    def _path(self, start: str, goal: str) -> list[str] | None:
        """A path of step names from `start` to `goal`, if there is one."""
        stack: list[tuple[str, list[str]]] = [(start, [start])]
        seen = set()
        while stack:
            node, path = stack.pop()
            if node == goal:
                return path
            if node in seen:
                continue
            seen.add(node)
            stack.extend((nxt, [*path, nxt]) for nxt in self._successors[node])
        return None

    def predecessors(self, name: str) -> list[str]:
        """The steps feeding `name`, in the order they were connected."""
        return list(self._predecessors[name])

    def successors(self, name: str) -> list[str]:
        """The steps `name` feeds."""
        return list(self._successors[name])

    @property
    def roots(self) -> list[str]:
        """Steps without predecessors."""
        return [name for name in self.steps if not self._predecessors[name]]

    @property
    def leaves(self) -> list[str]:
        """Steps without successors (their rows make the output dataset)."""
        return [name for name in self.steps if not self._successors[name]]

    def topological_order(self) -> list[str]:
        """Every step after all of its predecessors."""
        sorter = TopologicalSorter({name: self._predecessors[name] for name in self.steps})
        return list(sorter.static_order())

    def ancestors(self, name: str) -> set[str]:
        """Every step upstream of `name`."""
        return _reachable(self._predecessors, name)

    def descendants(self, name: str) -> set[str]:
        """Every step downstream of `name`."""
        return _reachable(self._successors, name)

    def set_routing_batch_function(self, name: str, function: RoutingBatchFunction) -> None:
        """Makes `function` decide which successors of step `name` get each of its batches."""
        current = self._routing.get(name)
        if current is not None and current is not function:
            raise PipelineValidationError(
                f"Step {name!r} already has a routing batch function; a step routes its "
                "batches with one function."
            )
        self._routing[name] = function

    def routing_batch_function(self, name: str) -> RoutingBatchFunction | None:
        """The routing batch function of step `name`, if it has one."""
        return self._routing.get(name)

    @property
    def routing_batch_functions(self) -> dict[str, RoutingBatchFunction]:
        """Step name -> its routing batch function."""
        return dict(self._routing)

    def receives_routed_batches(self, name: str) -> bool:
        """Whether a predecessor of `name` routes its batches."""
        return any(p in self._routing for p in self._predecessors[name])

    def is_convergence_step(self, name: str) -> bool:
        """Whether `name` joins several steps that receive routed batches."""
        predecessors = self._predecessors[name]
        return len(predecessors) > 1 and all(self.receives_routed_batches(p) for p in predecessors)

    def connections(self) -> list[dict[str, Any]]:
        """The edges as `[{"from": name, "to": [names]}]`, for dumps."""
        return [{"from": name, "to": list(targets)} for name, targets in self._successors.items()]


def _reachable(edges: dict[str, list[str]], name: str) -> set[str]:
    """Every step reached from `name` by following `edges` (step -> its neighbours)."""
    found: set[str] = set()
    stack = list(edges[name])
    while stack:
        node = stack.pop()
        if node not in found:
            found.add(node)
            stack.extend(edges[node])
    return found
