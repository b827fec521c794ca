"""`LoadDataFromDicts`: rows given inline as a list of dicts."""

from __future__ import annotations

from typing import Annotated, Any, Callable, Optional

from pydantic import Field, WrapValidator

from potstill.steps.base import GeneratorStep
from potstill.steps.typing import GeneratorStepOutput, StepColumns
from potstill.utils.rows import find_type_conflict, may_mix_types


def _rows_as_given(value: Any, validate: Callable[[Any], Any]) -> Any:
    """A list of plain dicts with text keys is kept as it is: validating it would copy every
    row (20 MB for 100,000 small rows), and the step never changes them (it yields copies).
    Anything else is validated (and copied) as `list[dict[str, Any]]`."""
    if (
        type(value) is list
        and value
        and all(type(row) is dict and all(type(key) is str for key in row) for row in value)
    ):
        return value
    return validate(value)


class LoadDataFromDicts(GeneratorStep):
    """Produces the given rows in batches of `batch_size`.

    Attributes:
        data: the rows, as a list of dicts (all with the same keys). A list of plain dicts
            is used as it is, not copied: change the rows after building the step and the
            run sees the change.
    """

    data: Annotated[list[dict[str, Any]], WrapValidator(_rows_as_given)] = Field(..., min_length=1)

    def process(self, offset: int = 0) -> GeneratorStepOutput:
        """Yields the rows after `offset` in batches of `batch_size`.

        Args:
            offset: how many rows to skip (a resumed run skips what it already has).

        Yields:
            `(rows, is_last_batch)`.
        """
        size = self.batch_size or 1
        total = len(self.data)
        if offset >= total:
            yield [], True
            return
        for start in range(offset, total, size):
            end = min(start + size, total)
            yield [dict(row) for row in self.data[start:end]], end >= total

    @property
    def outputs(self) -> StepColumns:
        """The keys of the first row."""
        return list(self.data[0].keys())

    def problems_before_run(self) -> list[str]:
        """A column holding values of two types (e.g. `int` and `str`), which could not be
        stored once the rows are processed: found here, before anything is sent."""
        if not may_mix_types(self.data):  # the common case, decided without Arrow
            return []
        from potstill.pipeline.step_batches import rows_to_table

        try:
            rows_to_table(self.data)
        except (ValueError, TypeError, OverflowError, NotImplementedError):
            # (Invalid text, a ValueError too, is repaired when stored, with a warning.)
            conflict = find_type_conflict(self.data)
            if conflict is not None:
                return [
                    f"Step {self.name!r}: `data` {conflict}. A column must hold one type in "
                    "every row (None is allowed anywhere): convert the values, e.g. all to str."
                ]
        return []

    def total_rows(self) -> Optional[int]:
        """The number of rows in `data`."""
        return len(self.data)
