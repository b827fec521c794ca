"""Tasks: steps that format rows into prompts, call an LLM and format its answers.

A task never loses a row: an input that cannot be formatted, a failed generation or an
answer `format_output` cannot parse gives `None` in the output columns, and the reason, the
raw answer and the token usage (with its dollar cost) go into the `potstill_metadata` column.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Optional

from pydantic import Field

from potstill.llms.base import LLM, AsyncLLM, describe_error
from potstill.llms.loading import load_llm
from potstill.llms.pricing import TokenPrice
from potstill.llms.typing import Generations
from potstill.llms.usage import tokens_cost
from potstill.mixins.runtime_parameters import RuntimeParameter
from potstill.steps.base import GeneratorStep, Step, _Step
from potstill.steps.context import current_row_offset
from potstill.steps.typing import StepInput, StepOutput
from potstill.typing import ChatType, Row
from potstill.utils.secrets import redact

METADATA_COLUMN = "potstill_metadata"


class LoadsLLM:
    """Loads a step's `llm` when the step loads and unloads it with the step (tasks and
    `GenerateEmbeddings` mix this in before their step class)."""

    if TYPE_CHECKING:
        llm: LLM

    def load(self) -> None:
        """Loads the step and its LLM."""
        super().load()  # type: ignore[misc]
        load_llm(self.llm)

    def unload(self) -> None:
        """Unloads the LLM, then the step."""
        self.llm.unload()
        super().unload()  # type: ignore[misc]


class _Task(LoadsLLM, _Step, ABC):
    """What tasks share: the LLM, generation settings and output formatting.

    Attributes:
        llm: the LLM that generates.
        group_generations: one row per input with a list per output column (True), or one
            row per generation (False).
        add_raw_output: keep the raw answer in `potstill_metadata["raw_output_<name>"]`.
        add_raw_input: keep the formatted prompt in `potstill_metadata["raw_input_<name>"]`.
        num_generations: how many generations per input.
    """

    llm: LLM
    group_generations: bool = False
    add_raw_output: RuntimeParameter[bool] = Field(
        default=True,
        description="Whether to include the raw output of the LLM in the key "
        "`raw_output_<TASK_NAME>` of the `potstill_metadata` dictionary output column.",
    )
    add_raw_input: RuntimeParameter[bool] = Field(
        default=True,
        description="Whether to include the raw input of the LLM in the key "
        "`raw_input_<TASK_NAME>` of the `potstill_metadata` dictionary output column.",
    )
    num_generations: RuntimeParameter[int] = Field(
        default=1, ge=1, description="The number of generations to be produced per input."
    )

    @abstractmethod
    def format_output(self, output: Optional[str], input: Optional[Row] = None) -> Row:
        """Turns one generation into output columns.

        Args:
            output: the generated text, or `None` when the generation failed.
            input: the row the generation was made for.

        Returns:
            The output columns.
        """

    def _output_on_failure(self) -> Row:
        return dict.fromkeys(self._own_output_columns())

    def _own_output_columns(self) -> list[str]:
        return [c for c in _column_names(self.outputs) if c != "model_name"]

    def _format_one(self, text: Optional[str], row: Row) -> tuple[Row, Optional[str]]:
        """Formats one generation; a failure gives `None` columns and the error."""
        try:
            return self.format_output(text, row), None
        except Exception as error:
            message = f"format_output failed: {describe_error(error)}"
            self.logger.warning("Task %r: %s", self.name, message)
            return self._output_on_failure(), message

    def _build_rows(
        self,
        inputs: list[Row],
        prompts: list[Optional[ChatType]],
        outputs: list[Generations],
    ) -> list[Row]:
        """Combines input rows with their generations into output rows."""
        model_name = self.llm.model_name
        price = self.llm.token_price()  # looked up once per batch
        keys = self._metadata_keys()
        rows: list[Row] = []
        for row, prompt, generations in zip(inputs, prompts, outputs):
            formatted = [self._format_one(text, row) for text in generations]
            errors = [
                _redacted(format_error or generation_error)
                for (_, format_error), generation_error in zip(formatted, generations.errors)
            ]
            if self.group_generations:
                columns = _combine(
                    [columns for columns, _ in formatted], self._own_output_columns()
                )
                metadata = _metadata(
                    keys, row, prompt, list(generations), generations, errors, slice(None), price
                )
                rows.append(_output_row(row, columns, model_name, metadata))
                continue
            for index, (columns, _) in enumerate(formatted):
                metadata = _metadata(
                    keys, row, prompt, generations[index], generations, errors, index, price
                )
                rows.append(_output_row(row, columns, model_name, metadata))
        return rows

    def _metadata_keys(self) -> tuple[Optional[str], Optional[str], str, str]:
        """The task's keys in `potstill_metadata`: raw output and raw input (`None` when not
        kept), statistics, error."""
        name = self.name
        return (
            f"raw_output_{name}" if self.add_raw_output else None,
            f"raw_input_{name}" if self.add_raw_input else None,
            f"statistics_{name}",
            f"error_{name}",
        )

    def expected_expansion(self) -> int:
        """Output rows per input row."""
        return 1 if self.group_generations else (self.num_generations or 1)


class Task(_Task, Step):
    """A task that processes batches of rows: `format_input` -> LLM -> `format_output`."""

    @abstractmethod
    def format_input(self, input: Row) -> ChatType:
        """Turns one row into the conversation sent to the LLM.

        Args:
            input: the row.

        Returns:
            The conversation.
        """

    def process(self, inputs: StepInput) -> StepOutput:
        """Generates for a batch of rows.

        Args:
            inputs: the rows.

        Yields:
            The output rows, one per generation (or one per row with `group_generations`).
        """
        prompts, failures = self._format_inputs(inputs)
        valid = [prompt for prompt in prompts if prompt is not None]
        outputs = self.llm.generate_outputs(
            valid,
            self.num_generations or 1,
            row_offset=current_row_offset(),
            **self.llm.get_generation_kwargs(),
        )
        yield self._build_rows(inputs, prompts, _reinsert(outputs, failures, self.num_generations))

    async def aprocess(self, inputs: list[Row], row_offset: int = 0) -> list[Row]:
        """The async form of `process` that the engine uses when `process` is not overridden.

        Many batches can be in flight at once; the LLM's limiter bounds the requests.

        Args:
            inputs: the rows (input mappings already applied).
            row_offset: index of the first row in the step's input, for log messages.

        Returns:
            The output rows.
        """
        prompts, failures = self._format_inputs(inputs)
        valid = [prompt for prompt in prompts if prompt is not None]
        outputs = await self.llm.agenerate_outputs(
            valid,
            self.num_generations or 1,
            row_offset=row_offset,
            **self.llm.get_generation_kwargs(),
        )
        return self._build_rows(inputs, prompts, _reinsert(outputs, failures, self.num_generations))

    def supports_async_processing(self) -> bool:
        """Whether the engine may call `aprocess` instead of `process`."""
        return type(self).process is Task.process

    def allows_concurrent_batches(self) -> bool:
        """Whether several batches may be processed at once (async LLMs only)."""
        return isinstance(self.llm, AsyncLLM) and self.supports_async_processing()

    def _format_inputs(self, inputs: list[Row]) -> tuple[list[Optional[ChatType]], dict[int, str]]:
        prompts: list[Optional[ChatType]] = []
        failures: dict[int, str] = {}
        for index, row in enumerate(inputs):
            try:
                prompts.append(self.format_input(row))
            except Exception as error:
                message = f"format_input failed: {describe_error(error)}"
                self.logger.warning(
                    "Task %r, row %d: %s", self.name, current_row_offset() + index, message
                )
                prompts.append(None)
                failures[index] = message
        return prompts, failures


class GeneratorTask(_Task, GeneratorStep, ABC):
    """A task that generates rows without input (implement `process(offset)`)."""


def _reinsert(
    outputs: list[Generations], failures: dict[int, str], num_generations: Optional[int]
) -> list[Generations]:
    """Puts failed generations back where inputs could not be formatted."""
    if not failures:
        return outputs
    remaining = iter(outputs)
    total = len(outputs) + len(failures)
    return [
        Generations.failed(num_generations or 1, failures[index])
        if index in failures
        else next(remaining)
        for index in range(total)
    ]


def _raw_output(raw: Any, generations: Generations, which: Any) -> Any:
    """The model's answer: the generation, or the answer kept where the generation is `None`
    (a structured output that failed validation)."""
    kept = generations.raw_outputs[which]
    if isinstance(which, slice):
        return [text if text is not None else other for text, other in zip(raw, kept)]
    return raw if raw is not None else kept


def _redacted(error: Optional[str]) -> Optional[str]:
    """An error for `potstill_metadata`, with every known secret hidden (an LLM's own
    error text may quote what a server echoed)."""
    return redact(error) if error else error


def _metadata(
    keys: tuple[Optional[str], Optional[str], str, str],
    row: Row,
    prompt: Optional[ChatType],
    raw: Any,
    generations: Generations,
    errors: list[Optional[str]],
    which: Any,
    price: Optional[TokenPrice] = None,
) -> Row:
    """The row's `potstill_metadata` with the task's entries (see `_Task._metadata_keys`)
    added after the ones it had: raw output and input, token statistics with their cost,
    and the error."""
    raw_output, raw_input, statistics, error = keys
    metadata: Row = dict(row.get(METADATA_COLUMN) or ())
    if raw_output is not None:
        metadata[raw_output] = _raw_output(raw, generations, which)
    if raw_input is not None:
        # A structured input's conversation (its structured output is the task's column).
        metadata[raw_input] = prompt[0] if type(prompt) is tuple else prompt
    input_tokens = generations.input_tokens[which]
    output_tokens = generations.output_tokens[which]
    metadata[statistics] = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cost": (
            [tokens_cost(price, i, o) for i, o in zip(input_tokens, output_tokens)]
            if isinstance(which, slice)
            else tokens_cost(price, input_tokens, output_tokens)
        ),
    }
    metadata[error] = errors[which]
    return metadata


def _merge(row: Row, columns: Row, model_name: str, metadata: Row) -> Row:
    """The row with the task's output columns, `model_name` and its metadata entries added
    to the row's `potstill_metadata`."""
    return _output_row(row, columns, model_name, {**(row.get(METADATA_COLUMN) or {}), **metadata})


def _output_row(row: Row, columns: Row, model_name: str, metadata: Row) -> Row:
    """The row with the task's output columns, `model_name` and `potstill_metadata` (whole)."""
    merged = {**row, **columns, "model_name": model_name}
    merged[METADATA_COLUMN] = metadata
    return merged


def _combine(per_generation: list[Row], names: list[str]) -> Row:
    keys = list(dict.fromkeys([*names, *(k for columns in per_generation for k in columns)]))
    return {key: [columns.get(key) for columns in per_generation] for key in keys}


def _column_names(spec: Any) -> list[str]:
    return list(spec.keys()) if isinstance(spec, dict) else list(spec)
