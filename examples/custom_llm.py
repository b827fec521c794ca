"""Custom LLMs: a synchronous `LLM` and an asynchronous `AsyncLLM`, used in a pipeline.

Neither needs a network or an API key. Run: `python examples/custom_llm.py`. (To test a
pipeline without a provider, `potstill.llms.testing` has ready-made ones: `TestLLM` echoes,
`FunctionLLM` answers with a function of yours.)
"""

import asyncio
from typing import List

from pydantic import validate_call

from potstill.llms import LLM, AsyncLLM
from potstill.llms.typing import GenerateOutput
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration
from potstill.steps.tasks.typing import ChatType


class ReverseLLM(LLM):
    """Answers with the last message reversed (synchronous, batched)."""

    @property
    def model_name(self) -> str:
        return "reverse"

    @validate_call
    def generate(
        self, inputs: List[ChatType], num_generations: int = 1, uppercase: bool = False
    ) -> List[GenerateOutput]:
        """Reverses the last message of each input.

        Args:
            inputs: the conversations.
            num_generations: generations per input.
            uppercase: also upper-case the answer.
        """
        outputs = []
        for conversation in inputs:
            text = conversation[-1]["content"][::-1]
            outputs.append([text.upper() if uppercase else text] * num_generations)
        return outputs


class CountingLLM(AsyncLLM):
    """Answers with the number of words of the last message (one input at a time)."""

    @property
    def model_name(self) -> str:
        return "counting"

    @validate_call
    async def agenerate(self, input: ChatType, prefix: str = "words: ") -> GenerateOutput:
        """Counts words.

        Args:
            input: the conversation.
            prefix: text put before the count.
        """
        await asyncio.sleep(0.01)  # where a real provider awaits its API
        return [f"{prefix}{len(input[-1]['content'].split())}"]


with Pipeline(name="custom-llms") as pipeline:
    load = LoadDataFromDicts(data=[{"instruction": "potstill runs pipelines"}])
    reverse = TextGeneration(
        name="reverse", llm=ReverseLLM(), output_mappings={"generation": "reversed"}
    )
    count = TextGeneration(name="count", llm=CountingLLM(), num_generations=2)
    load >> reverse
    load >> count

if __name__ == "__main__":
    # Standalone: load() first. AsyncLLM.generate is provided by the base class.
    llm = CountingLLM()
    llm.load()
    print(llm.generate(inputs=[[{"role": "user", "content": "one two three"}]], num_generations=2))

    distiset = pipeline.run(
        params={
            "reverse": {"llm": {"generation_kwargs": {"uppercase": True}}},
            "count": {"llm": {"generation_kwargs": {"prefix": "n="}}},
        },
        use_cache=False,
    )
    print(distiset["reverse"]["train"][0]["reversed"])
    print(list(distiset["count"]["train"]["generation"]))
