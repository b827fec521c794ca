"""Where a routing step's batches go during a run, decided once and kept on disk.

A step with a routing batch function (see `routing_batch_function.py`) asks it, for each
batch it emits, which successors receive the batch. Each decision is appended to
`routes.jsonl` in the step's folder before the batch is passed on, so a resumed run sends
every batch where it went the first time (a random choice is not drawn again), and the
steps downstream compute the same batches from the same input.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from potstill.errors import PipelineRunError
from potstill.llms.base import describe_error
from potstill.pipeline.routing_batch_function import RoutedBatch, RoutingBatchFunction
from potstill.utils.append_log import AppendLog, read_lines


class RouteLog:
    """The routing decisions of one step, kept on disk so that a resumed run routes each
    batch where it went the first time.

    Args:
        path: the JSON-lines file, one `{"seq", "to"}` line per routed batch.
    """

    def __init__(self, path: Path) -> None:
        self._decisions: dict[int, list[str]] = {}
        for line in read_lines(path):
            try:
                entry = json.loads(line)
                self._decisions[int(entry["seq"])] = [str(name) for name in entry["to"]]
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a kill
        self._log = AppendLog(path)

    def get(self, seq: int) -> Optional[list[str]]:
        """The recorded decision for batch `seq`, if any."""
        return self._decisions.get(seq)

    def record(self, seq: int, chosen: list[str]) -> None:
        """Records (and keeps) the decision for batch `seq`."""
        self._decisions[seq] = chosen
        self._log.append(json.dumps({"seq": seq, "to": chosen}).encode("utf-8"))

    def close(self) -> None:
        """Closes the file."""
        self._log.close()


class StepRouting:
    """The routing of the batches one step emits, in the order it emits them.

    Args:
        step_name: the routing step.
        function: its routing batch function.
        folder: the step's folder, where the decisions are kept.
    """

    def __init__(self, step_name: str, function: RoutingBatchFunction, folder: Path) -> None:
        self.step_name = step_name
        self.function = function
        self.log = RouteLog(folder / "routes.jsonl")
        self.emitted = 0

    def route(self, successors: list[str]) -> tuple[int, list[str]]:
        """Decides where the next emitted batch goes (the recorded decision on resume).

        Args:
            successors: the names of the step's successors.

        Returns:
            The batch's number among the emitted ones, and the successors that receive it.

        Raises:
            PipelineRunError: when the routing batch function fails.
        """
        seq = self.emitted
        self.emitted += 1
        chosen = self.log.get(seq)
        if chosen is None:
            try:
                chosen = self.function.route_batch(RoutedBatch(self.step_name, seq), successors)
            except Exception as error:
                raise PipelineRunError(
                    f"The routing batch function of step {self.step_name!r} failed on batch "
                    f"{seq}: {describe_error(error)}"
                ) from error
            self.log.record(seq, chosen)
        else:
            self.function._register(RoutedBatch(self.step_name, seq), chosen)
        return seq, chosen

    def decision(self, seq: int) -> Optional[list[str]]:
        """The successors that received emitted batch `seq` (`None` until it is emitted)."""
        return self.log.get(seq) if seq < self.emitted else None

    def close(self) -> None:
        """Closes the decisions' file."""
        self.log.close()
