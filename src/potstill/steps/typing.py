"""Types used by steps: what `process` receives and yields."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Dict, List, Tuple, Union


class _StepInputMarker:
    def __repr__(self) -> str:
        return "STEP_INPUT"


STEP_INPUT = _StepInputMarker()

StepInput = Annotated[List[Dict[str, Any]], STEP_INPUT]
"""Annotates the `process` argument that receives a batch of rows (`*inputs` for several)."""

StepOutput = Iterator[List[Dict[str, Any]]]
"""What `Step.process` yields: lists of rows. Every yield is kept."""

GeneratorStepOutput = Iterator[Tuple[List[Dict[str, Any]], bool]]
"""What `GeneratorStep.process` yields: `(rows, is_last_batch)`."""

StepColumns = Union[List[str], Dict[str, bool]]
"""Column names, or column name -> whether it is required."""
