"""`StructuredGeneration`: generates for each `instruction` an answer that follows the
`structured_output` of its row."""

from __future__ import annotations

import json
from typing import Any, List, Optional

from potstill.errors import PotstillUserError
from potstill.llms.structured import StructuredInput, StructuredOutput
from potstill.steps.tasks.base import Task
from potstill.steps.typing import StepColumns
from potstill.typing import ChatType, Row


class StructuredGeneration(Task):
    """Generates, for each `instruction`, an answer that follows the row's structured output.

    Each row says what its answer must be, in its `structured_output` column:
    `{"format": "json", "schema": <JSON schema>}` or `{"format": "regex", "schema":
    "<pattern>"}` (see `potstill.llms.structured`). The LLM constrains its output to it
    where its API can, every answer is validated, and an invalid one is sent back with the
    validation error (`structured_output_retries` times, a field of the LLM); an answer
    that stays invalid is `None`, with the error and the raw answer in `potstill_metadata`.

    Input columns: `instruction`, `structured_output`, and optionally `system_prompt`.
    Output columns: `generation` (the validated JSON as a string, or the matched text),
    one column per name in `output_fields`, and `model_name`.

    Attributes:
        use_system_prompt: send the row's `system_prompt` column as a system message.
        output_fields: top-level fields of the JSON answer to write each into a column of
            its own name (`None` where the answer lacks it or failed).
        keep_generation: also write the whole answer into `generation`.

    Examples:
        ```python
        from potstill.llms.testing import FunctionLLM
        from potstill.steps.tasks import StructuredGeneration

        schema = {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"],
        }
        task = StructuredGeneration(
            llm=FunctionLLM(function=lambda input, **kwargs: '{"name": "Ada", "age": 36}'),
            output_fields=["name", "age"],
        )
        task.load()
        rows = next(
            task.process(
                [
                    {
                        "instruction": "Make up a person.",
                        "structured_output": {"format": "json", "schema": schema},
                    }
                ]
            )
        )
        print(rows[0]["generation"], rows[0]["name"], rows[0]["age"])
        # {"name": "Ada", "age": 36} Ada 36
        ```
    """

    use_system_prompt: bool = False
    output_fields: Optional[List[str]] = None
    keep_generation: bool = True

    @property
    def inputs(self) -> StepColumns:
        """`instruction` and `structured_output` (required), `system_prompt` (optional)."""
        return {"instruction": True, "structured_output": True, "system_prompt": False}

    @property
    def outputs(self) -> StepColumns:
        """`generation` (unless `keep_generation` is false), the `output_fields` and
        `model_name`."""
        columns = ["generation"] if self.keep_generation else []
        return [*columns, *(self.output_fields or []), "model_name"]

    def format_input(self, input: Row) -> StructuredInput:  # type: ignore[override]
        """The conversation and the row's structured output.

        Args:
            input: a row with an `instruction` string and a `structured_output` dict.

        Returns:
            `(conversation, structured_output)`, which the LLM layer sends and checks.

        Raises:
            PotstillUserError: naming the column whose value is wrong (that row's
                generation is then `None` with this error; the other rows go on).
        """
        instruction = input.get("instruction")
        if not isinstance(instruction, str):
            raise PotstillUserError(
                f"StructuredGeneration {self.name!r}: column `instruction` must be a string, "
                f"got {type(instruction).__name__} ({instruction!r:.80})."
            )
        try:
            spec = StructuredOutput.from_value(input.get("structured_output"))
        except ValueError as error:
            raise PotstillUserError(
                f"StructuredGeneration {self.name!r}: column `structured_output` is not a "
                f"structured output: {error}"
            ) from None
        messages: ChatType = [{"role": "user", "content": instruction}]
        system_prompt = input.get("system_prompt")
        if self.use_system_prompt and system_prompt:
            messages.insert(0, {"role": "system", "content": system_prompt})
        return messages, spec

    def format_output(self, output: Optional[str], input: Optional[Row] = None) -> Row:
        """The answer, and the `output_fields` read from it.

        Args:
            output: the validated answer, or `None`.
            input: the row.

        Returns:
            The output columns.
        """
        columns: Row = {"generation": output} if self.keep_generation else {}
        if self.output_fields:
            value = _json_object(output)
            for name in self.output_fields:
                columns[name] = value.get(name)
        return columns


def _json_object(output: Optional[str]) -> dict[str, Any]:
    if output is None:
        return {}
    try:
        value = json.loads(output)
    except json.JSONDecodeError:  # a regex answer
        return {}
    return value if isinstance(value, dict) else {}
