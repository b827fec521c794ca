"""A preference (DPO) dataset from a few instructions, on the embedded local model.

The pipeline evolves each instruction once with `EvolInstruct`, answers the evolved
instruction twice with `TextGeneration` (a careful sampler at temperature 0.2 and a freer
one at 0.9), puts the two answers side by side with `GroupColumns`, has `UltraFeedback`
rate them ("overall-rating", 1 to 5), and turns each row into a DPO pair with
`FormatTextGenerationDPO`: the best rated answer is `chosen`, the worst `rejected`. Every
model is SmolLM2-135M-Instruct, the embedded default of `LlamaCppLLM` (no download, no API
key), so it runs anywhere; it is far too small to judge well, so expect few usable pairs
(see below).

    python scripts/install.py llama-cpp          # potstill[llama-cpp], with a portable llama.cpp
    python examples/preference_dataset.py        # writes ./potstill-data/preference-dataset
    python examples/preference_dataset.py /tmp/dpo --limit 2 --max-new-tokens 48 --show 1

Measured: the default run (8 instructions, 96 new tokens per evolution and answer, 128 per
verdict, one llama.cpp thread per model, the default on 2 cores) takes 26 to 34 s of wall
time on 2 cores of an AMD EPYC server shared with other jobs. On the same server under a
heavier load (load average 6.6), it took 61 s (32 s of CPU) with the judge's JSON verdict
and 65 s (33 s of CPU) without it: the grammar costs nothing measurable.

The judge: UltraFeedback asks for a rating and a rationale per answer. In its text format
(`Rating:`, `Rationale:`) a 135M-parameter model rarely answers readably: in 120 verdicts on
this pipeline's rows, with five different sampling settings, 11 had a rating and 3 rated
both answers, and a default run got 0 usable pairs of 8 rows. So the judge here uses
`use_default_structured_output=True`: it answers JSON (a list of ratings from 1 to 5 and a
list of short rationales, one per answer), which llama.cpp's grammar keeps to the schema and
potstill validates (see docs/guide/structured-output.md). In the default run every verdict
parsed and 6 of the 8 rows got two different ratings (the other 2 are ties). The ratings of
so small a model are mostly positional ([1, 2] in 5 of the 8 rows): the dataset has the
right shape, not preferences worth training on. A row whose verdict could not be read keeps
`None` ratings (the raw verdict and the error are in `potstill_metadata`) and gets `None` as
`chosen` and `rejected`; a row where only one answer was rated, or both got the same
rating, has the same answer in both. The script counts each kind at the end. For real
preference data, give the judge a larger model, `LlamaCppLLM(model_path="<an instruct
GGUF>", n_ctx=2048)` or any other potstill LLM such as `OpenAILLM(model="gpt-4o")`, in
`build_pipeline` below.

Load the result again with `Distiset.load_from_disk(<directory>)`.
"""

from __future__ import annotations

import argparse
import textwrap
import time
from pathlib import Path
from typing import Any, Optional

from potstill.distiset import Distiset
from potstill.llms import LlamaCppLLM
from potstill.pipeline import Pipeline
from potstill.steps import FormatTextGenerationDPO, GroupColumns, KeepColumns, LoadDataFromDicts
from potstill.steps.tasks import EvolInstruct, TextGeneration, UltraFeedback

INSTRUCTIONS = [
    "Give me three tips for staying healthy.",
    "Explain what a rainbow is.",
    "Why do we need sleep?",
    "What does a compiler do?",
    "Write a short, friendly greeting for a new colleague.",
    "Name three fruits that are rich in vitamin C.",
    "What is photosynthesis?",
    "Write one sentence about the moon.",
]

# The two answer samplers: (task name, temperature, seed). The answers are listed in this
# order in `generations`, and `ratings[i]` rates `generations[i]`.
SAMPLERS = [("answer_careful", 0.2, 1), ("answer_free", 0.9, 2)]

DEFAULT_OUTPUT = Path("potstill-data") / "preference-dataset"


def smollm2(
    n_threads: Optional[int],
    max_new_tokens: int,
    temperature: float,
    seed: int,
    n_ctx: int = 512,
    **sampling: Any,
) -> LlamaCppLLM:
    """The embedded SmolLM2-135M-Instruct with its sampling settings.

    Args:
        n_threads: CPU threads for llama.cpp (`None`: half of the CPUs).
        max_new_tokens: the longest generation, in tokens.
        temperature: the sampling temperature.
        seed: seeds the per-generation seeds, so a run can be repeated.
        n_ctx: the context window: the prompt and the generation must fit in it.
        **sampling: more llama.cpp sampling settings (`top_k`, `repeat_penalty`...).

    Returns:
        The LLM.
    """
    return LlamaCppLLM(  # no model_path: the embedded SmolLM2-135M-Instruct
        n_threads=n_threads,
        n_ctx=n_ctx,
        seed=seed,
        generation_kwargs={
            "max_new_tokens": max_new_tokens,
            "temperature": temperature,
            "top_p": 0.9,
            "extra_generation_kwargs": sampling,
        },
    )


def build_pipeline(
    instructions: list[str],
    max_new_tokens: int,
    judge_max_new_tokens: int,
    n_threads: Optional[int],
) -> Pipeline:
    """Load -> EvolInstruct -> two TextGenerations -> GroupColumns -> UltraFeedback ->
    KeepColumns -> FormatTextGenerationDPO.

    Args:
        instructions: one row per instruction.
        max_new_tokens: the longest evolved instruction and answer, in tokens.
        judge_max_new_tokens: the longest verdict, in tokens.
        n_threads: CPU threads for each llama.cpp model (`None`: half of the CPUs).

    Returns:
        The pipeline.
    """
    with Pipeline(
        name="preference-dataset",
        description="Evolved instructions, two answers each, rated and paired for DPO.",
    ) as pipeline:
        load = LoadDataFromDicts(data=[{"seed_instruction": text} for text in instructions])
        # The answers respond to the evolved instruction, so it is what the judge reads and
        # what the DPO prompt is: a pair is only meaningful with the prompt it answers. So
        # the evolved instruction goes into the `instruction` column, which every later step
        # reads, and the one it was evolved from stays in `seed_instruction`.
        evolve = EvolInstruct(
            # A mild repetition penalty, which small models need when they write prose.
            llm=smollm2(n_threads, max_new_tokens, temperature=0.7, seed=0, repeat_penalty=1.1),
            num_evolutions=1,
            input_mappings={"instruction": "seed_instruction"},
            output_mappings={"evolved_instruction": "instruction"},
        )
        answers = [
            TextGeneration(
                name=name,
                llm=smollm2(n_threads, max_new_tokens, temperature, seed=seed, repeat_penalty=1.1),
            )
            for name, temperature, seed in SAMPLERS
        ]
        # `[a, b] >> group`: the lists follow SAMPLERS' order. Both answers come from the same
        # GGUF, so `generation_models` (and later `chosen_model`, `rejected_model`) name the
        # same model twice: the position in `generations` tells the samplers apart.
        group = GroupColumns(
            columns=["generation", "model_name"],
            output_columns=["generations", "generation_models"],
        )
        judge = UltraFeedback(
            name="judge",
            aspect="overall-rating",
            # The verdict as JSON (one rating and one short rationale per answer), which
            # llama.cpp's grammar makes SmolLM2 write and potstill validates.
            use_default_structured_output=True,
            # n_ctx 2048: the rating prompt, both answers and the verdict must fit. No
            # repetition penalty: a verdict repeats its keys. Sampling (not greedy decoding)
            # gives the two answers' ratings a chance to differ.
            llm=smollm2(
                n_threads, judge_max_new_tokens, temperature=0.8, seed=3, n_ctx=2048, top_k=20
            ),
        )
        keep = KeepColumns(
            columns=[
                "seed_instruction",
                "instruction",
                "generations",
                "generation_models",
                "ratings",
                "rationales",
            ]
        )
        dpo = FormatTextGenerationDPO()
        load >> evolve >> answers >> group >> judge >> keep >> dpo
    return pipeline


def pair_kind(row: dict[str, Any]) -> str:
    """`"pair"` (two different ratings), `"tie"` (one answer rated, or both the same) or
    `"unrated"` (no verdict could be read)."""
    ratings = [r for r in row["ratings"] or [] if r is not None]
    if not ratings:
        return "unrated"
    return "pair" if len(ratings) == len(row["generations"]) and len(set(ratings)) > 1 else "tie"


def show(row: dict[str, Any]) -> None:
    """Prints a row: the prompt, the ratings, the chosen and rejected answers."""
    print(f"Prompt: {row['prompt']}")
    print(f"  (evolved from: {row['seed_instruction']})")
    print(f"  ratings: {row['ratings']}")
    if row["chosen"] is None:
        print("  No rating could be read: no pair.\n")
        return
    labels = ["chosen", "rejected"] if row["chosen"] != row["rejected"] else ["chosen = rejected"]
    for label in labels:
        column = label.split()[0]
        answer = row[column][-1]["content"]
        sampler = SAMPLERS[row["generations"].index(answer)][0]
        print(f"  {label} (rating {row[f'{column}_rating']}, {sampler}):")
        print(textwrap.indent(textwrap.fill(answer.strip() or "(empty)", width=84), "    "))
    print()


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
        help=f"how many of the {len(INSTRUCTIONS)} instructions to use",
    )
    parser.add_argument(
        "--max-new-tokens", type=int, default=96, help="longest evolved instruction and answer"
    )
    parser.add_argument(
        "--judge-max-new-tokens", type=int, default=128, help="longest verdict, in tokens"
    )
    parser.add_argument("--n-threads", type=int, default=None, help="CPU threads per model")
    parser.add_argument("--show", type=int, default=2, help="how many rows to print")
    parser.add_argument(
        "--no-cache", action="store_true", help="recompute instead of reusing an earlier run"
    )
    args = parser.parse_args(argv)

    pipeline = build_pipeline(
        INSTRUCTIONS[: args.limit], args.max_new_tokens, args.judge_max_new_tokens, args.n_threads
    )
    started = time.perf_counter()
    distiset = pipeline.run(use_cache=not args.no_cache)
    elapsed = time.perf_counter() - started
    path = distiset.save_to_disk(args.output)

    rows = distiset["default"]["train"]
    print(f"\nGenerated {len(rows)} rows in {elapsed:.1f} s; dataset written to {path}\n")
    kinds = [pair_kind(row) for row in rows]
    # Rows with a pair first, then those with a tie, then those without a verdict.
    order = sorted(range(len(rows)), key=lambda i: ("pair", "tie", "unrated").index(kinds[i]))
    for index in order[: args.show]:
        show(rows[index])
    print(
        f"Usable preference pairs (two different ratings): {kinds.count('pair')} of {len(rows)} "
        f"rows; {kinds.count('tie')} with one rating or a tie (chosen == rejected), "
        f"{kinds.count('unrated')} without a readable verdict (chosen and rejected are None)."
    )
    print(f"Load it back with Distiset.load_from_disk({str(path)!r}).")
    return distiset


if __name__ == "__main__":
    main()
