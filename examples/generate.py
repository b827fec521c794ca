"""Standalone generation: an LLM used on its own, outside any task or pipeline.

Needs `pip install -e ".[openai]"` and `OPENAI_API_KEY` (and `OPENAI_BASE_URL` for any
OpenAI-compatible server). Run: `python examples/generate.py`.
"""

from potstill.llms import OpenAILLM

llm = OpenAILLM(model="gpt-4o-mini")
llm.load()  # always call load() when an LLM is used on its own

outputs = llm.generate(
    inputs=[
        [{"role": "user", "content": "What's the capital of Spain?"}],
        [{"role": "user", "content": "What's the capital of France?"}],
    ],
    num_generations=2,
    temperature=0.7,
)

for output in outputs:  # one list per input, one entry per generation (None if it failed)
    print(output)

# Token usage travels beside the texts (the return type is still list[list[str | None]]).
print("input tokens:", outputs[0].input_tokens, "output tokens:", outputs[0].output_tokens)
print(llm.usage)
