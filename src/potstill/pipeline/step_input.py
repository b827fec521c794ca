"""How rows reaching a step are cut into its input batches, each with its provenance.

A step takes its input in one of three ways, decided by the pipeline's shape:

- `AlignedInput`: rows from each predecessor are buffered, and a batch is cut as soon as
  `input_batch_size` rows are there from every one of them (or, once they have all finished,
  from what is left). A global step takes everything at once, when they have all finished.
- `RoutedInput`: a step fed by a routing step cuts its batches within each routed batch it
  receives, so a batch never mixes two routed batches.
- `ConvergingInput`: a *convergence step* (fed by several steps that receive routed batches)
  takes, routed batch after routed batch, the outputs of the steps that received it, aligned.

Each batch records its provenance: which rows of which upstream batches it holds. A stored
output is reused on resume only when it was computed from the same provenance.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, NamedTuple, Optional

from potstill.typing import Row

Origin = tuple[int, bool]
"""Where rows of a routed batch come from: the routed batch's number (among the batches its
routing step emitted), and whether they are the last rows produced from it."""


class Cut(NamedTuple):
    """Rows cut from a step's input, ready to become its next batch.

    Attributes:
        data: one list of rows per predecessor (one list for a routed input).
        provenance: which rows of which upstream batches they are (hashed into the batch's
            input id).
        origin: for rows of a routed batch, where they come from.
    """

    data: list[list[Row]]
    provenance: Any
    origin: Optional[Origin] = None


class AlignedInput:
    """Rows buffered per predecessor and cut into aligned batches.

    Args:
        predecessors: the steps feeding this one, in order.
        batch_size: rows per batch (from each predecessor).
        whole: take every row in one batch once all predecessors have finished (a global
            step).
    """

    def __init__(self, predecessors: list[str], batch_size: int, whole: bool = False) -> None:
        self.predecessors = predecessors
        self.batch_size = batch_size
        self.whole = whole
        self.buffers: dict[str, list[Row]] = {name: [] for name in predecessors}
        # Per predecessor, where the buffered rows come from: [batch id, first row, rows].
        self.sources: dict[str, deque[list[Any]]] = {name: deque() for name in predecessors}

    def receive(
        self, source: str, rows: list[Row], batch_id: str, origin: Optional[Origin] = None
    ) -> None:
        """Buffers rows of batch `batch_id` of predecessor `source`."""
        self.buffers[source].extend(rows)
        if rows:
            self.sources[source].append([batch_id, 0, len(rows)])

    def ready_rows(self) -> int:
        """Rows that could be taken right now (aligned across predecessors)."""
        if not self.buffers:
            return 0
        return min(len(buffer) for buffer in self.buffers.values())

    def has_rows(self) -> bool:
        """Whether any row is still buffered."""
        return any(self.buffers.values())

    def take(self, all_in: bool) -> Optional[Cut]:
        """The next batch, if one can be cut.

        Args:
            all_in: whether every predecessor has finished (no more rows will come).
        """
        if self.whole:
            data = [self.buffers[name] for name in self.predecessors]
            if not all_in or not any(data):
                return None
            self.buffers = {name: [] for name in self.predecessors}
        else:
            if self.ready_rows() >= self.batch_size:
                size = [self.batch_size] * len(self.predecessors)
            elif all_in and self.has_rows():
                size = [min(len(self.buffers[n]), self.batch_size) for n in self.predecessors]
            else:
                return None
            data = []
            for name, count in zip(self.predecessors, size):
                buffer = self.buffers[name]
                data.append(buffer[:count])
                self.buffers[name] = buffer[count:]
        provenance = [
            self._take_sources(name, len(rows)) for name, rows in zip(self.predecessors, data)
        ]
        return Cut(data, provenance)

    def _take_sources(self, name: str, count: int) -> list[tuple[str, int, int]]:
        """Consumes the origin of `count` buffered rows of predecessor `name`."""
        sources = self.sources[name]
        taken = []
        while count:
            batch_id, first, rows = sources[0]
            used = min(rows, count)
            taken.append((batch_id, first, used))
            if used == rows:
                sources.popleft()
            else:
                sources[0][1] += used
                sources[0][2] -= used
            count -= used
        return taken


class RoutedInput:
    """Routed batches of the (routing) predecessor, each cut into batches of its own.

    Args:
        batch_size: rows per batch.
    """

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        # Routed batches not yet cut: (routed batch number, rows, batch id, first row).
        self.segments: deque[tuple[int, list[Row], str, int]] = deque()

    def receive(
        self, source: str, rows: list[Row], batch_id: str, origin: Optional[Origin] = None
    ) -> None:
        """Takes routed batch `origin` (an empty one too: it is passed on all the same)."""
        assert origin is not None
        self.segments.append((origin[0], rows, batch_id, 0))

    def ready_rows(self) -> int:
        """Rows received and not yet taken."""
        return sum(len(segment[1]) for segment in self.segments)

    def has_rows(self) -> bool:
        """Whether a routed batch is not entirely taken."""
        return bool(self.segments)

    def take(self, all_in: bool) -> Optional[Cut]:
        """The next batch from the oldest routed batch (batches never mix two of them)."""
        if not self.segments:
            return None
        origin, rows, batch_id, start = self.segments[0]
        taken, rest = rows[: self.batch_size], rows[self.batch_size :]
        if rest:
            self.segments[0] = (origin, rest, batch_id, start + len(taken))
        else:
            self.segments.popleft()
        return Cut([taken], [(batch_id, start, len(taken))], (origin, not rest))


class ConvergingInput:
    """The outputs that the routed steps produced from each routed batch, joined.

    Args:
        predecessors: the routed steps feeding this one, in order.
        batch_size: rows per batch (from each routed step that received the routed batch).
        decision: routed batch number -> the steps it was routed to (`None` until the
            routing step has emitted it).
    """

    def __init__(
        self,
        predecessors: list[str],
        batch_size: int,
        decision: Callable[[int], Optional[list[str]]],
    ) -> None:
        self.predecessors = predecessors
        self.batch_size = batch_size
        self.decision = decision
        # Per routed batch not yet taken: the rows of each step, the ids of their batches,
        # and the steps that have produced all their rows from it.
        self.parts: dict[int, dict[str, list[Row]]] = {}
        self.part_sources: dict[int, dict[str, list[str]]] = {}
        self.closed: dict[int, set[str]] = {}
        self.next_unit = 0
        # The routed batch being cut: its rows per receiving step, its key, rows taken.
        self.unit: list[list[Row]] = []
        self.unit_key = ""
        self.unit_taken = 0

    def receive(
        self, source: str, rows: list[Row], batch_id: str, origin: Optional[Origin] = None
    ) -> None:
        """Takes rows that routed step `source` produced from routed batch `origin[0]`."""
        assert origin is not None
        unit, last = origin
        self.parts.setdefault(unit, {}).setdefault(source, []).extend(rows)
        self.part_sources.setdefault(unit, {}).setdefault(source, []).append(batch_id)
        if last:
            self.closed.setdefault(unit, set()).add(source)

    def ready_rows(self) -> int:
        """0: rows held for a convergence step do not hold generators back."""
        return 0

    def has_rows(self) -> bool:
        """Whether rows of some routed batch are not taken yet."""
        return bool(self.parts or any(self.unit))

    def take(self, all_in: bool) -> Optional[Cut]:
        """The next aligned batch of the outputs that the routed steps produced from one
        routed batch, routed batches in order."""
        while not any(self.unit):
            chosen = self.decision(self.next_unit)
            if chosen is None:
                return None
            branches = [name for name in self.predecessors if name in chosen]
            if not all(name in self.closed.get(self.next_unit, ()) for name in branches):
                return None
            parts = self.parts.pop(self.next_unit, {})
            sources = self.part_sources.pop(self.next_unit, {})
            self.closed.pop(self.next_unit, None)
            self.unit = [parts.get(name, []) for name in branches]
            self.unit_key = repr([(name, sources.get(name, [])) for name in branches])
            self.unit_taken = 0
            self.next_unit += 1
        data = [rows[: self.batch_size] for rows in self.unit]
        self.unit = [rows[self.batch_size :] for rows in self.unit]
        provenance = (self.unit_key, self.unit_taken, len(data[0]) if data else 0)
        self.unit_taken += provenance[2]
        return Cut(data, provenance)
