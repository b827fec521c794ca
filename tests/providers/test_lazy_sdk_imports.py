"""Importing the provider classes imports none of their SDKs (they load in `load()`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CODE = """
import sys
from potstill.llms import (
    AnthropicLLM, CohereLLM, InferenceEndpointsLLM, OllamaLLM, VertexAILLM,
)
loaded = [m for m in ("anthropic", "cohere", "huggingface_hub", "ollama", "google.genai",
                      "google.auth", "transformers", "torch") if m in sys.modules]
print(",".join(loaded))
"""


def test_provider_modules_import_no_sdk() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CODE],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": f"{ROOT / 'src'}:{ROOT}", "PATH": ""},
        timeout=60,
    )

    assert result.stdout.strip() == ""
