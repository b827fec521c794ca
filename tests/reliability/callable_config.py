"""A pipeline whose LLM config holds a callable; run as a script it prints what must be the
same in every process: the step signatures and the key of a request with a callable kwarg.

Usage: python -m tests.reliability.callable_config
"""

from __future__ import annotations

import json
from typing import Any, Callable

from pydantic import validate_call

from potstill.llms import AsyncLLM
from potstill.llms.cache import request_key
from potstill.llms.typing import GenerateOutput
from potstill.pipeline import Pipeline
from potstill.pipeline.signature import step_signatures
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration
from potstill.steps.tasks.typing import ChatType


def clip_logits(token_ids: list[int], logits: Any) -> Any:
    """A logits processor, as vLLM takes them."""
    return logits


class ProcessorLLM(AsyncLLM):
    """An LLM whose configuration holds callables."""

    processors: list[Callable[..., Any]] = []

    @property
    def model_name(self) -> str:
        return "processor"

    @validate_call
    async def agenerate(self, input: ChatType) -> GenerateOutput:
        """Answers.

        Args:
            input: the conversation.
        """
        return ["ok"]


def main() -> None:
    with Pipeline(name="callables") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "q0"}])
        load >> TextGeneration(llm=ProcessorLLM(processors=[clip_logits, lambda ids, x: x]))
    key = request_key({}, [], {"logits_processors": [clip_logits]}, 1, None)
    print(json.dumps({"signatures": step_signatures(pipeline.dag), "key": key}))


if __name__ == "__main__":
    main()
