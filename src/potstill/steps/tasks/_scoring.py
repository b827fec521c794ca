"""What the judge and scorer tasks share: checking their input columns, reading numbers out of
a model's free text, and reporting what could not be parsed.

A judge's answer is free text, and real models drift from the requested format: markdown
around the labels, `4/5` instead of `4`, a missing section, a score outside the scale. The
parsers here keep every value they can read, give `None` for the rest (never a number outside
the documented range), and note each problem. `JudgeTask` turns those notes into the row's
`error_<task>` entry in `potstill_metadata`, next to the raw answer, instead of failing.
"""

from __future__ import annotations

import re
from abc import ABC
from typing import Any, ClassVar, Optional

from potstill.errors import PotstillUserError
from potstill.steps.tasks.base import Task
from potstill.steps.typing import StepColumns
from potstill.typing import Row

# A number at the start of a value, after markdown or brackets: `4`, `**4**`, `[4]`, `(4/5)`.
_LEADING_NUMBER = re.compile(r"^[\s*_`'\"\[(]*([-+]?\d+(?:\.\d+)?)")
# "[2] Score: 4", "**[2] score:** 4", "2. Score: 4": one item's score in Deita's format.
_SCORE_LINE = re.compile(
    r"^[ \t*_#>-]*\[?[ \t]*(\d+)[ \t]*[\].):]?[ \t*_-]*score[ \t*_]*:?[ \t*_]*(.*)$",
    re.IGNORECASE | re.MULTILINE,
)
_NOT_GIVEN = re.compile(r"^\W*(?:n/?a|none|null)\b", re.IGNORECASE)


class ParsedColumns(dict):
    """The output columns parsed from one answer, plus what could not be parsed.

    It is a plain `dict` for every purpose; `problems` lists, in words, each value that was
    missing or invalid (empty when the whole answer was understood).
    """

    def __init__(self, columns: Row, problems: Optional[list[str]] = None) -> None:
        super().__init__(columns)
        self.problems: list[str] = list(problems or [])


class JudgeTask(Task, ABC):
    """A task whose `format_output` returns `ParsedColumns`: each answer it could not fully
    parse gets its problems in `potstill_metadata["error_<task>"]` and a warning in the log."""

    def _format_one(self, text: Optional[str], row: Row) -> tuple[Row, Optional[str]]:
        columns, error = super()._format_one(text, row)
        problems = getattr(columns, "problems", None)
        if error is None and text is not None and problems:
            error = "could not parse the answer: " + "; ".join(problems)
            self.logger.warning("Task %r: %s", self.name, error)
        return columns, error


class DeitaScorer(JudgeTask, ABC):
    """A judge that scores each item of a list column in one answer, the Deita way: one
    `[i] Score: x` line per item, read into `scores` (aligned with the items)."""

    scored_column: ClassVar[str]
    """The list column whose items are scored."""

    @property
    def outputs(self) -> StepColumns:
        """`scores` and `model_name`."""
        return ["scores", "model_name"]

    def format_output(self, output: Optional[str], input: Optional[Row] = None) -> Row:
        """Reads one score per item of `scored_column` from `[i] Score: x` lines.

        Args:
            output: the judge's answer, or `None` when the generation failed.
            input: the row, for the number of items.

        Returns:
            `scores`, aligned with the items.
        """
        return numbered_scores(output, list_length((input or {}).get(self.scored_column)))


def leading_number(text: Optional[str]) -> Optional[float]:
    """The number `text` starts with (`"4/5"` -> 4.0, `"**3** (good)"` -> 3.0), else `None`.

    Only a leading number counts, so a placeholder such as `"[Rating for text 1]"` is not
    read as a rating of 1.
    """
    if not text:
        return None
    match = _LEADING_NUMBER.match(text)
    return float(match.group(1)) if match else None


def says_not_applicable(text: Optional[str]) -> bool:
    """Whether `text` declines to give a value (`N/A`, `None`, `null`)."""
    return bool(text) and _NOT_GIVEN.match(text) is not None  # type: ignore[arg-type]


def integer_in_range(
    text: Optional[str], low: int, high: int, what: str, problems: list[str]
) -> Optional[int]:
    """The whole number that `text` starts with, when it lies in `[low, high]`.

    `N/A`/`None` gives `None` without a problem (the model chose not to rate); anything else
    that is not a whole number in range gives `None` and a note in `problems`.

    Args:
        text: the value as the model wrote it, e.g. `"4"`, `"4/5"`, `"**4** (very good)"`.
        low: the smallest valid value.
        high: the largest valid value.
        what: the value's name in the problem note, e.g. `"rating of text 2"`.
        problems: where the problem note goes.

    Returns:
        The number, or `None`.
    """
    if says_not_applicable(text):
        return None
    number = leading_number(text)
    if number is None:
        problems.append(f"no {what}" if not text else f"{what} {_quote(text)} is not a number")
        return None
    if number != int(number) or not low <= number <= high:
        problems.append(f"{what} {_quote(text)} is not a whole number from {low} to {high}")
        return None
    return int(number)


def number_in_range(
    text: Optional[str], low: float, high: float, what: str, problems: list[str]
) -> Optional[float]:
    """The number that `text` starts with, as a float, when it lies in `[low, high]`.

    Args:
        text: the value as the model wrote it.
        low: the smallest valid value.
        high: the largest valid value.
        what: the value's name in the problem note.
        problems: where the problem note goes.

    Returns:
        The number, or `None` (with a note in `problems`).
    """
    number = leading_number(text)
    if number is None:
        problems.append(f"no {what}")
        return None
    if not low <= number <= high:
        problems.append(f"{what} {number:g} is outside {low:g} to {high:g}")
        return None
    return number


def numbered_scores(output: Optional[str], count: Optional[int]) -> ParsedColumns:
    """Reads `[i] Score: x` lines (Deita's answer format) into `scores`, aligned with items
    1 to `count`: a float from 1 to `count + 1`, else `None` with a problem noted.

    Args:
        output: the judge's answer, or `None` when the generation failed.
        count: how many items were scored; `None` when the row had no valid list (then the
            answer's highest item number counts).

    Returns:
        `{"scores": [...]}` with its problems.
    """
    if output is None:
        return ParsedColumns({"scores": None if count is None else [None] * count})
    given: dict[int, str] = {}
    for line in _SCORE_LINE.finditer(output):
        given.setdefault(int(line.group(1)), line.group(2))
    count = count if count is not None else max(given, default=0)
    if not given:
        return ParsedColumns({"scores": [None] * count}, ["no `[i] Score: x` lines found"])
    problems: list[str] = []
    scores = [
        number_in_range(given.get(i), 1, count + 1, f"score for item {i}", problems)
        for i in range(1, count + 1)
    ]
    return ParsedColumns({"scores": scores}, problems)


def list_length(value: Any) -> Optional[int]:
    """The length of a list column's value, or `None` when it is not a list."""
    return len(value) if isinstance(value, (list, tuple)) else None


def numbered(items: list[str]) -> str:
    """`[1] first`, `[2] second`, ... one per line."""
    return "\n".join(f"[{i}] {item}" for i, item in enumerate(items, start=1))


def required_text(value: Any, column: str, task: Task) -> str:
    """Checks that the row's `column` holds a string.

    Raises:
        PotstillUserError: naming the task, the column and the value.
    """
    if not isinstance(value, str):
        raise PotstillUserError(
            f"{type(task).__name__} {task.name!r}: column `{column}` must be a string, got "
            f"{type(value).__name__} ({value!r:.80})."
        )
    return value


def required_texts(value: Any, column: str, task: Task, count: Optional[int] = None) -> list[str]:
    """Checks that the row's `column` holds a non-empty list of strings (of `count` items).

    Raises:
        PotstillUserError: naming the task, the column and the value.
    """
    size = f"{count} strings" if count is not None else "strings"
    if (
        not isinstance(value, (list, tuple))
        or not value
        or not all(isinstance(item, str) for item in value)
    ):
        raise PotstillUserError(
            f"{type(task).__name__} {task.name!r}: column `{column}` must be a list of "
            f"{size}, got {type(value).__name__} ({value!r:.80})."
        )
    if count is not None and len(value) != count:
        raise PotstillUserError(
            f"{type(task).__name__} {task.name!r}: column `{column}` must hold exactly "
            f"{count} texts, got {len(value)}."
        )
    return list(value)


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= 40 else text[:37] + "...")
