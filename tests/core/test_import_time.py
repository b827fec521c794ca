"""Importing the core packages is fast and pulls in no provider SDK nor heavy dependency."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

HEAVY = (
    "openai",
    "anthropic",
    "cohere",
    "groq",
    "mistralai",
    "litellm",
    "ollama",
    "google.genai",
    "vertexai",
    "huggingface_hub",
    "transformers",
    "torch",
    "llama_cpp",
    "vllm",
    "datasets",
    "pyarrow",
    "rich",
    "nest_asyncio",
    "ray",
)

PROBE = f"""
import json, sys, time
started = time.perf_counter()
import potstill.llms, potstill.pipeline, potstill.steps.tasks
from potstill.llms import LLM, AsyncLLM
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration
elapsed = time.perf_counter() - started
loaded = [m for m in {list(HEAVY)!r} if m in sys.modules]
print(json.dumps({{"elapsed": elapsed, "loaded": loaded}}))
"""


def _probe(code: str) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_core_imports_are_fast_and_light() -> None:
    # the best of two fresh interpreters, so one scheduling hiccup on a busy machine
    # does not decide the result
    runs = [_probe(PROBE) for _ in range(2)]

    for run in runs:
        assert run["loaded"] == []
    assert min(run["elapsed"] for run in runs) < 0.5


def test_a_provider_class_is_imported_lazily() -> None:
    code = """
import json, sys
from potstill.llms import OpenAILLM
llm = OpenAILLM(model="gpt-4", api_key="k")
print(json.dumps({"loaded": [m for m in ("openai", "anthropic") if m in sys.modules],
                  "module": "potstill.llms.openai" in sys.modules}))
"""
    result = _probe(code)

    # constructing the provider does not import its SDK; `load()` does
    assert result == {"loaded": [], "module": True}
