"""`DatasetLoader`: the base of the generator steps that read a `datasets` dataset.

A loader opens its dataset when it is loaded, and reads its columns (the step's outputs, which
the steps after it are checked against) from a streamed view when the pipeline is validated;
it opens the dataset again only if its settings changed in between.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Optional

from pydantic import Field, PrivateAttr

from potstill.errors import PotstillUserError
from potstill.llms.base import describe_error
from potstill.mixins.runtime_parameters import RuntimeParameter
from potstill.steps.base import GeneratorStep
from potstill.steps.typing import GeneratorStepOutput, StepColumns
from potstill.typing import Row

# Fields that do not change which rows a loader produces.
_NOT_SOURCE = frozenset({"name", "pipeline", "input_mappings", "output_mappings", "batch_size"})


class DatasetLoader(GeneratorStep, ABC):
    """Opens a `datasets.Dataset` (or `IterableDataset`) and yields its rows in batches.

    Attributes:
        num_examples: how many rows to read, from the start; all when not given.
    """

    num_examples: Optional[RuntimeParameter[int]] = Field(
        default=None,
        description="The number of examples to load from the dataset. By default will load all examples.",
    )

    _dataset: Any = PrivateAttr(default=None)
    _opened_for: Optional[tuple[tuple[str, str], ...]] = PrivateAttr(default=None)
    _columns: list[str] = PrivateAttr(default_factory=list)
    _columns_for: Optional[tuple[tuple[str, str], ...]] = PrivateAttr(default=None)
    _total: Optional[int] = PrivateAttr(default=None)

    @abstractmethod
    def _source_given(self) -> bool:
        """Whether the settings say where the data is (else the step cannot open it yet)."""

    @abstractmethod
    def _open(self, streaming: bool) -> Any:
        """Opens the dataset, not yet limited: a `Dataset`, or an `IterableDataset` when
        `streaming` (a loader that cannot stream may ignore it)."""

    # -- opening -------------------------------------------------------------------------

    def _settings(self) -> tuple[tuple[str, str], ...]:
        return tuple(
            (name, repr(getattr(self, name)))
            for name in type(self).model_fields
            if name not in _NOT_SOURCE
        )

    def _require_source(self) -> None:
        if not self._source_given():
            raise PotstillUserError(
                f"Step {self.name!r} does not know what to load yet: set "
                f"{' / '.join(repr(f) for f in self._source_fields())} (or pass it in "
                f"`run(params={{{self.name!r}: {{...}}}})`)."
            )

    def _ensure_open(self) -> Any:
        settings = self._settings()
        if self._dataset is not None and self._opened_for == settings:
            return self._dataset
        self._require_source()
        from datasets import Dataset

        dataset = self._open(streaming=bool(getattr(self, "streaming", False)))
        if isinstance(dataset, Dataset):
            if self.num_examples is not None:
                dataset = dataset.select(range(min(self.num_examples, len(dataset))))
            total: Optional[int] = len(dataset)
        else:
            total = self._streaming_size(dataset)
            if self.num_examples is not None:
                dataset = dataset.take(self.num_examples)
                total = self.num_examples if total is None else min(total, self.num_examples)
        self._dataset, self._opened_for, self._total = dataset, settings, total
        self._set_columns(_column_names(dataset), settings)
        return dataset

    def _peek_columns(self) -> list[str]:
        """The dataset's columns, read from a streamed view (the first rows at most) unless
        the dataset is open already: the pipeline asks for them before it runs."""
        settings = self._settings()
        if self._columns_for != settings:
            self._require_source()
            try:
                columns = _column_names(self._open(streaming=True))
            except UnicodeDecodeError as error:
                raise self._undecodable(error) from None
            self._set_columns(columns, settings)
        return self._columns

    def _set_columns(self, columns: list[str], settings: tuple[tuple[str, str], ...]) -> None:
        self._columns, self._columns_for = columns, settings
        for key in self.output_mappings:
            if key not in columns:
                raise PotstillUserError(
                    f"Step {self.name!r}: `output_mappings` key {key!r} is not a column of the "
                    f"dataset {columns}. Map one of those instead."
                )

    def _source_fields(self) -> list[str]:
        return []

    def _streaming_size(self, dataset: Any) -> Optional[int]:
        splits = getattr(getattr(dataset, "info", None), "splits", None) or {}
        split = splits.get(getattr(self, "split", None) or "train")
        return getattr(split, "num_examples", None) or None

    def verify_inputs_mappings(self) -> None:
        """A loader reads no columns, so any `input_mappings` is a mistake.

        Raises:
            PotstillUserError: naming the mappings and what to use instead.
        """
        # (`output_mappings` are checked against the dataset's columns once it is open.)
        if self.input_mappings:
            raise PotstillUserError(
                f"Step {self.name!r} reads no columns (it loads them), so it takes no "
                f"`input_mappings`; got {self.input_mappings}. Use `output_mappings` to rename "
                "the dataset's columns."
            )

    def _failed(self, what: str, error: BaseException) -> PotstillUserError:
        return PotstillUserError(
            f"Step {self.name!r} could not load {what}: {describe_error(error)}"
        )

    # -- the step ------------------------------------------------------------------------

    @property
    def outputs(self) -> StepColumns:
        """The dataset's columns (read from its first rows; [] until the step knows what to
        load)."""
        if not self._source_given():
            return []
        return self._peek_columns()

    def load(self) -> None:
        """Opens the dataset (unless validation already did, with the same settings)."""
        super().load()
        self._ensure_open()

    def unload(self) -> None:
        """Drops the dataset."""
        self._dataset, self._opened_for = None, None
        super().unload()

    def total_rows(self) -> Optional[int]:
        """The number of rows, when known (not for a streamed dataset without size info)."""
        return self._total

    def process(self, offset: int = 0) -> GeneratorStepOutput:
        """Yields the rows after `offset` in batches of `batch_size`.

        Args:
            offset: how many rows to skip (a resumed run skips what it already has).

        Yields:
            `(rows, is_last_batch)`.
        """
        from datasets import Dataset

        dataset = self._ensure_open()
        size = self.batch_size or 1
        if isinstance(dataset, Dataset):
            batches = _batches_of_dataset(dataset, offset, size)
        else:
            batches = _batches_of_stream(dataset.skip(offset) if offset else dataset, size)
        try:
            yield from batches
        except UnicodeDecodeError as error:
            raise self._undecodable(error) from None

    def _undecodable(self, error: UnicodeDecodeError) -> PotstillUserError:
        """The error for text that does not decode, met while reading rows."""
        return self._failed("the dataset's text", error)


def _batches_of_dataset(dataset: Any, offset: int, size: int) -> GeneratorStepOutput:
    total = len(dataset)
    if offset >= total:
        yield [], True
        return
    for start in range(offset, total, size):
        end = min(start + size, total)
        yield _rows(dataset[start:end]), end >= total


def _batches_of_stream(dataset: Any, size: int) -> GeneratorStepOutput:
    batch: list[Row] = []
    for row in dataset:
        if len(batch) == size:
            yield batch, False
            batch = []
        batch.append(row)
    yield batch, True


def _column_names(dataset: Any) -> list[str]:
    names = dataset.column_names
    if names is None:  # a stream whose features are only known once it is read
        names = next(iter(dataset.take(1)), {})
    return list(names)


def _rows(columns: dict[str, list[Any]]) -> list[Row]:
    names = list(columns)
    return [dict(zip(names, values)) for values in zip(*columns.values())]
