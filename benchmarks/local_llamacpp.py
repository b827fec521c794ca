"""LlamaCppLLM in a pipeline against direct llama-cpp-python calls, on the same work.

Both sides run the embedded SmolLM2-135M-Instruct (Q4_1 GGUF) on the same 50 prompts with
the same settings (n_threads, n_ctx, n_batch, max_new_tokens, greedy decoding), so they do
identical work; the script checks that the generated texts are identical.

- direct: `Llama(...)` then one `create_chat_completion` per prompt, in a loop.
- potstill: `Pipeline(LoadDataFromDicts >> TextGeneration(llm=LlamaCppLLM(...)))`, run
  without cache (a fresh temporary cache directory), progress display off.
- llm.generate (for locating overhead): `LlamaCppLLM.load()` then one `generate` call.

Each timing includes loading the model (and for the pipeline, everything `run` does:
validation, the event loop, storing the batch, building the Distiset); `datasets` and
`pyarrow` are imported before any timing, since a process pays for them once. Runs alternate
between the variants; the best of each is compared, both in wall-clock time and in CPU time
(all threads of the process): on a machine shared with other work, wall-clock times vary by
tens of percent from run to run, while CPU time tracks the work done.

Run: `python benchmarks/local_llamacpp.py [--prompts 50] [--max-new-tokens 32] [--n-threads 2]
[--repeats 2]`. Target: potstill / direct within 1.05.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from typing import Any

from potstill.llms import LlamaCppLLM
from potstill.llms.llamacpp import embedded_model_path
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration

TOPICS = [
    "the sea", "mountains", "a library", "coffee", "the moon", "rain", "a bicycle",
    "autumn", "a lighthouse", "bread", "music", "a forest", "the desert", "snow",
    "a city at night", "friendship", "a garden", "trains", "the sun", "a river",
    "cats", "dogs", "a market", "chess", "the wind", "a bridge", "honey", "a volcano",
    "clouds", "a museum", "tea", "a storm", "the stars", "an island", "a clock",
    "paper", "a kite", "the ocean floor", "a castle", "spring", "an old map",
    "a violin", "salt", "a harbour", "winter", "a candle", "glaciers", "a meadow",
    "a telescope", "the morning",
]  # fmt: skip


def prompts(count: int) -> list[str]:
    """`count` short instructions (cycling through 50 topics)."""
    return [f"Write one sentence about {TOPICS[i % len(TOPICS)]}." for i in range(count)]


Timing = tuple[float, float]  # (wall-clock seconds, CPU seconds)


def _clock() -> Timing:
    return time.perf_counter(), time.process_time()


def _since(start: Timing) -> Timing:
    wall, cpu = _clock()
    return wall - start[0], cpu - start[1]


def run_direct(instructions: list[str], settings: dict[str, Any]) -> tuple[Timing, list[str]]:
    """Plain llama-cpp-python: load, then one chat completion per prompt."""
    from llama_cpp import Llama

    started = _clock()
    llama = Llama(
        model_path=str(embedded_model_path()),
        n_gpu_layers=-1,
        n_ctx=settings["n_ctx"],
        n_batch=settings["n_batch"],
        n_threads=settings["n_threads"],
        n_threads_batch=settings["n_threads"],
        seed=settings["seed"],
        verbose=False,
    )
    texts = []
    for instruction in instructions:
        completion = llama.create_chat_completion(
            messages=[{"role": "user", "content": instruction}],
            max_tokens=settings["max_new_tokens"],
            temperature=0.0,
            top_p=1.0,
            frequency_penalty=0.0,
            presence_penalty=0.0,
            seed=settings["seed"],
        )
        texts.append(completion["choices"][0]["message"]["content"])
    elapsed = _since(started)
    llama.close()
    return elapsed, texts


def _llm(settings: dict[str, Any]) -> LlamaCppLLM:
    return LlamaCppLLM(
        n_ctx=settings["n_ctx"],
        n_batch=settings["n_batch"],
        n_threads=settings["n_threads"],
        seed=settings["seed"],
        generation_kwargs={"max_new_tokens": settings["max_new_tokens"], "temperature": 0.0},
    )


def run_pipeline(instructions: list[str], settings: dict[str, Any]) -> tuple[Timing, list[str]]:
    """potstill: the whole `Pipeline.run`, model load included."""
    with tempfile.TemporaryDirectory(prefix="potstill-bench-") as cache_dir:
        with Pipeline(name="bench-llamacpp", cache_dir=cache_dir, show_progress=False) as pipeline:
            load = LoadDataFromDicts(
                data=[{"instruction": text} for text in instructions],
                batch_size=len(instructions),
            )
            generate = TextGeneration(llm=_llm(settings), input_batch_size=len(instructions))
            load >> generate
        started = _clock()
        distiset = pipeline.run(use_cache=False)
        elapsed = _since(started)
    return elapsed, list(distiset["default"]["train"]["generation"])


def run_generate(instructions: list[str], settings: dict[str, Any]) -> tuple[Timing, list[str]]:
    """potstill's LLM alone: load, then one `generate` call for every prompt."""
    llm = _llm(settings)
    started = _clock()
    llm.load()
    outputs = llm.generate(
        inputs=[[{"role": "user", "content": text}] for text in instructions],
        **llm.get_generation_kwargs(),
    )
    elapsed = _since(started)
    llm.unload()
    return elapsed, [output[0] for output in outputs]


VARIANTS = {"direct": run_direct, "potstill": run_pipeline, "llm.generate": run_generate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=50)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--n-threads", type=int, default=2)
    parser.add_argument("--n-ctx", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each variant")
    parser.add_argument(
        "--no-generate", action="store_true", help="skip the standalone llm.generate variant"
    )
    args = parser.parse_args()

    settings = {
        "n_threads": args.n_threads,
        "n_ctx": args.n_ctx,
        "n_batch": args.n_ctx,
        "max_new_tokens": args.max_new_tokens,
        "seed": 42,
    }
    instructions = prompts(args.prompts)
    variants = [v for v in VARIANTS if not (args.no_generate and v == "llm.generate")]
    import datasets  # noqa: F401  (imported once per process, outside the timings)
    import pyarrow  # noqa: F401

    print(
        f"{len(instructions)} prompts, max_new_tokens={args.max_new_tokens}, greedy, "
        f"n_threads={args.n_threads}, n_ctx={args.n_ctx}, model {embedded_model_path().name}"
    )
    walls: dict[str, list[float]] = {v: [] for v in variants}
    cpus: dict[str, list[float]] = {v: [] for v in variants}
    texts: dict[str, list[str]] = {}
    for repeat in range(args.repeats):
        order = variants if repeat % 2 == 0 else list(reversed(variants))
        for variant in order:
            (wall, cpu), texts[variant] = VARIANTS[variant](instructions, settings)
            walls[variant].append(wall)
            cpus[variant].append(cpu)
            print(f"  run {repeat + 1} {variant:>12}: {wall:7.2f} s wall, {cpu:7.2f} s CPU")

    same = sum(a == b for a, b in zip(texts["direct"], texts["potstill"]))
    print(f"identical generations (potstill vs direct): {same}/{len(instructions)}")
    for variant in variants:
        print(
            f"{variant:>12}: best {min(walls[variant]):7.2f} s wall "
            f"(median {statistics.median(walls[variant]):7.2f}), "
            f"best {min(cpus[variant]):7.2f} s CPU"
        )
    for variant in variants[1:]:
        print(
            f"ratio {variant} / direct: {min(walls[variant]) / min(walls['direct']):.3f} wall, "
            f"{min(cpus[variant]) / min(cpus['direct']):.3f} CPU (best of {args.repeats})"
        )


if __name__ == "__main__":
    main()
