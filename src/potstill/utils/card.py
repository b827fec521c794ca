"""The dataset card (`README.md`) that `Distiset.push_to_hub` writes: what the pipeline does,
how to run it again, and what a row of each configuration looks like."""

from __future__ import annotations

import json
from typing import Any, Optional

_MAX_VALUE_CHARS = 300


def size_category(rows: int) -> str:
    """The Hub's `size_categories` tag for a number of rows."""
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")]
    bounds += [(1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M")]
    for bound, label in bounds:
        if rows < bound:
            return label
    return "n>100M"


def card_text(
    repo_id: str,
    endpoint: str,
    pipeline: Optional[dict[str, Any]],
    examples: dict[str, dict[str, Any]],
) -> str:
    """The Markdown body of the card.

    Args:
        repo_id: the dataset repository.
        endpoint: the Hub's URL (`huggingface_hub.constants.ENDPOINT`).
        pipeline: the run's `pipeline.yaml`, parsed; None when there is none.
        examples: configuration name -> its first row.

    Returns:
        The Markdown text.
    """
    parts = [
        f"# Dataset card for {repo_id.split('/')[-1]}",
        "This dataset was generated with [potstill](https://potstill.readthedocs.io), a library "
        "for building datasets with LLMs.",
    ]
    if pipeline is not None:
        parts += _pipeline_section(repo_id, endpoint, pipeline.get("pipeline", pipeline))
    parts.append("## Dataset structure")
    for name, row in examples.items():
        shown = {key: _short(value) for key, value in row.items()}
        parts += [
            f"The configuration `{name}` has rows like this one:",
            "```json\n" + json.dumps(shown, indent=4, ensure_ascii=False, default=str) + "\n```",
            "Load it with:",
            "```python\nfrom datasets import load_dataset\n\n"
            f'ds = load_dataset("{repo_id}", "{name}")\n```',
        ]
    return "\n\n".join(parts) + "\n"


def _pipeline_section(repo_id: str, endpoint: str, pipeline: dict[str, Any]) -> list[str]:
    config_url = f"{endpoint}/datasets/{repo_id}/resolve/main/pipeline.yaml"
    steps = pipeline.get("steps") or []
    rows = ["| Step | Class | Sends its rows to |", "|---|---|---|"]
    targets = {c.get("from"): c.get("to") or [] for c in pipeline.get("connections") or []}
    for entry in steps:
        name = entry.get("name")
        kind = (entry.get("step") or {}).get("type_info", {}).get("name", "?")
        rows.append(
            f"| `{name}` | `{kind}` | {', '.join(f'`{t}`' for t in targets.get(name, [])) or '-'} |"
        )
    description = pipeline.get("description")
    return [
        "## Pipeline",
        f"The pipeline `{pipeline.get('name')}`"
        + (f": {description.rstrip('.')}" if description else "")
        + f". Its steps ({len(steps)}):",
        "\n".join(rows),
        "## Reproduce it",
        "The repository holds the pipeline's configuration, `pipeline.yaml`. Run the same "
        "pipeline again with the potstill command line:",
        f'```console\npotstill pipeline run --config "{config_url}"\n```',
        "or look at its steps and runtime parameters first:",
        f'```console\npotstill pipeline info --config "{config_url}"\n```',
        "API keys are not stored in `pipeline.yaml`: set the providers' environment variables "
        "(e.g. `OPENAI_API_KEY`) or pass them with `--param STEP.llm.api_key=...`.",
    ]


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _MAX_VALUE_CHARS:
        return value[: _MAX_VALUE_CHARS - 3] + "..."
    return value
