"""Counting the rows a run failed on, per step and in the returned datasets.

A row failed in a step when its `potstill_metadata` holds an error for that step
(`error_<step name>`): a generation that failed after its retries, an input `format_input`
could not format, an answer `format_output` could not parse, or a batch the step raised on
(the engine then sets the step's output columns to `None` and records the error). The
counts are read from the stored batches with pyarrow, so they hold for resumed and fully
cached runs too.
"""

from __future__ import annotations

from typing import Any, Optional

from potstill.pipeline.step_batches import StepBatches
from potstill.steps.tasks.base import METADATA_COLUMN

_ERROR_PREFIX = "error_"
_MAX_EXAMPLE_CHARS = 300


class FailedRows(dict):  # type: ignore[type-arg]
    """Failed rows per step: step name -> rows with an error of that step (only steps that
    failed on some row, so an empty `FailedRows` means nothing failed).

    ```python
    distiset = pipeline.run()
    if distiset.failed_rows:
        print(distiset.failed_rows.total, "rows failed")
        for line in distiset.failed_rows.describe():
            print(line)  # "text_generation_0: 3 of 50 rows failed (first error: ...)"
    ```

    Attributes:
        rows: step name -> rows the step produced (every step).
        examples: step name -> the first error of that step.
        total: rows of the returned datasets with an error of any step.
        total_rows: rows of the returned datasets.
    """

    def __init__(
        self,
        failed: Optional[dict[str, int]] = None,
        *,
        rows: Optional[dict[str, int]] = None,
        examples: Optional[dict[str, str]] = None,
        total: int = 0,
        total_rows: int = 0,
    ) -> None:
        super().__init__(failed or {})
        self.rows: dict[str, int] = dict(rows or {})
        self.examples: dict[str, str] = dict(examples or {})
        self.total = total
        self.total_rows = total_rows

    def describe(self) -> list[str]:
        """One line per step with failed rows: `"<step>: <n> of <rows> rows failed (first
        error: ...)"`."""
        lines = []
        for step, failed in self.items():
            line = f"{step}: {failed:,} of {self.rows.get(step, failed):,} rows failed"
            example = self.examples.get(step)
            if example:
                line += f" (first error: {example})"
            lines.append(line)
        return lines

    def __repr__(self) -> str:
        return f"FailedRows({dict(self)!r}, total={self.total}, total_rows={self.total_rows})"


def count_failed_rows(steps: dict[str, StepBatches], leaf_tables: dict[str, Any]) -> FailedRows:
    """Counts failed rows from what the steps produced.

    Args:
        steps: step name -> its stored batches, for the steps that can fail on rows, in the
            order the result lists them.
        leaf_tables: the output tables of the steps whose output is returned (already in
            memory, so they are not read again); they give `total` and `total_rows`.

    Returns:
        The counts.
    """
    failed: dict[str, int] = {}
    rows: dict[str, int] = {}
    examples: dict[str, str] = {}
    for name, stored in steps.items():
        table = leaf_tables.get(name)
        tables = [table] if table is not None else stored.read_all_tables([METADATA_COLUMN])
        rows[name] = 0
        for table in tables:
            rows[name] += table.num_rows
            if METADATA_COLUMN not in table.column_names:
                continue
            count, example = errors_in(table.column(METADATA_COLUMN), step=name)
            if count:
                failed[name] = failed.get(name, 0) + count
                if example and name not in examples:
                    examples[name] = _shorten(example)
    total = sum(
        errors_in(table.column(METADATA_COLUMN))[0]
        for table in leaf_tables.values()
        if METADATA_COLUMN in table.column_names
    )
    total_rows = sum(table.num_rows for table in leaf_tables.values())
    return FailedRows(failed, rows=rows, examples=examples, total=total, total_rows=total_rows)


def errors_in(metadata: Any, step: Optional[str] = None) -> tuple[int, Optional[str]]:
    """Rows of a `potstill_metadata` column that hold an error, and the first such error.

    Args:
        metadata: the column (a pyarrow array or chunked array of structs).
        step: count only this step's errors; `None` counts a row with an error of any step.

    Returns:
        The number of rows, and the first error message (when `step` is given).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pa.types.is_struct(metadata.type) or len(metadata) == 0:
        return 0, None
    names = [metadata.type.field(index).name for index in range(metadata.type.num_fields)]
    wanted = [f"{_ERROR_PREFIX}{step}"] if step is not None else names
    flags = values = None
    for field in wanted:
        if field not in names or not field.startswith(_ERROR_PREFIX):
            continue
        values = pc.struct_field(metadata, field)
        present = _holds_error(values)
        flags = present if flags is None else pc.or_(flags, present)
    if flags is None:
        return 0, None
    count = int(pc.sum(flags).as_py() or 0)
    example = None
    if step is not None and count and values is not None:
        first = pc.filter(values, flags)[0].as_py()
        if isinstance(first, list):  # grouped generations: one error (or None) each
            first = next(error for error in first if error is not None)
        example = str(first)
    return count, example


def _holds_error(values: Any) -> Any:
    """Per row, whether an error column holds an error: a message, or (for grouped
    generations) a list with at least one message among its `None`s."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not (pa.types.is_list(values.type) or pa.types.is_large_list(values.type)):
        return pc.is_valid(values)
    return pa.array(
        [bool(row) and any(error is not None for error in row) for row in values.to_pylist()],
        type=pa.bool_(),
    )


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_EXAMPLE_CHARS else text[: _MAX_EXAMPLE_CHARS - 3] + "..."
