"""A task used on its own: `TextGeneration` formats rows into prompts, calls the LLM and
formats the answers into columns.

Needs `pip install -e ".[openai]"` and `OPENAI_API_KEY`. Run: `python examples/task.py`.
"""

from potstill.llms import OpenAILLM
from potstill.steps.tasks import TextGeneration

task = TextGeneration(
    name="text_generation",
    llm=OpenAILLM(model="gpt-4o-mini"),
    system_prompt="You are a concise geography teacher.",
)
task.load()  # loads the task and its LLM

rows = next(
    task.process(
        inputs=[
            {"instruction": "What's the capital of Spain?"},
            {"instruction": "What's the capital of France?"},
        ]
    )
)
for row in rows:
    print(f"{row['instruction']} -> {row['generation']} ({row['model_name']})")

# Raw output, raw input, token counts and the error (if any) of each row.
print(rows[0]["potstill_metadata"]["statistics_text_generation"])
