"""The instruction tasks in pipelines, through the real `openai` SDK and the loopback server
(which answers the tasks' prompts in the formats they ask for, see
`tests/fake_server/scripted.py`), and resuming: a run that lost its stored batches but kept
its request journal re-sends nothing."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tests.fake_server import FakeServer
from tests.fake_server.scripted import REFUSAL, USER_QUESTIONS
from tests.gallery.helpers import ScriptedLLM, loopback_llm, scripted
from tests.gallery.test_evol import rewrite

from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import (
    EvolComplexityGenerator,
    EvolInstruct,
    EvolInstructGenerator,
    EvolQuality,
    Genstruct,
    InstructionBacktranslation,
    Magpie,
    MagpieGenerator,
    SelfInstruct,
)


def chat_requests(server: FakeServer) -> list[Any]:
    return [r for r in server.requests if r.path == "/v1/chat/completions"]


def completion_requests(server: FakeServer) -> list[Any]:
    return [r for r in server.requests if r.path == "/v1/completions"]


def test_single_request_tasks(fake_server: FakeServer) -> None:
    rows = [
        {
            "input": "Bees make honey from nectar.",
            "title": "Bees",
            "content": "Bees make honey. They store it in combs.",
            "instruction": "How do bees make honey?",
            "generation": "Bees collect nectar, reduce its water and store it in wax combs.",
        },
        {  # a row the server answers with a refusal no task can parse
            "input": "UNPARSEABLE",
            "title": "UNPARSEABLE",
            "content": "x",
            "instruction": "UNPARSEABLE",
            "generation": "x",
        },
    ]
    with Pipeline(name="single-request") as pipeline:
        load = LoadDataFromDicts(data=rows)
        tasks = [
            SelfInstruct(llm=loopback_llm(fake_server), num_instructions=3),
            Genstruct(llm=loopback_llm(fake_server)),
            InstructionBacktranslation(llm=loopback_llm(fake_server)),
        ]
        load >> tasks
    distiset = pipeline.run(use_cache=False)

    self_instruct = distiset["self_instruct_0"]["train"]
    assert self_instruct["instructions"][0] == [
        'What is the main idea of "Bees make honey from nectar."?',
        'Summarize "Bees make honey from nectar." in one sentence.',
        'Why does "Bees make honey from nectar." matter?',
    ]
    genstruct = distiset["genstruct_0"]["train"]
    assert genstruct["user"][0] == 'What does the text "Bees" say?'
    assert genstruct["assistant"][0] == "Bees make honey."
    rating = distiset["instruction_backtranslation_0"]["train"]
    assert rating["score"][0] == 5
    assert rating["reason"][0] == "The answer has 12 words and addresses the instruction directly."
    for name, column in (
        ("self_instruct_0", "instructions"),
        ("genstruct_0", "user"),
        ("instruction_backtranslation_0", "score"),
    ):
        train = distiset[name]["train"]
        assert train[column][1] is None
        metadata = train["potstill_metadata"][1]
        assert metadata[f"raw_output_{name}"] == REFUSAL
        assert metadata[f"error_{name}"].startswith("format_output failed")
        assert train["model_name"] == ["test-model"] * 2
    assert len(chat_requests(fake_server)) == 6


def test_evol_tasks_and_generators(fake_server: FakeServer) -> None:
    with Pipeline(name="evol") as pipeline:
        load = LoadDataFromDicts(
            data=[
                {"instruction": "What is 2 + 2?", "response": "4."},
                {"instruction": "Name a planet.", "response": "Mars."},
            ]
        )
        evol = EvolInstruct(
            llm=loopback_llm(fake_server),
            num_evolutions=2,
            store_evolutions=True,
            generate_answers=True,
            seed=3,
        )
        quality = EvolQuality(llm=loopback_llm(fake_server), num_evolutions=1)
        load >> [evol, quality]
        EvolComplexityGenerator(
            llm=loopback_llm(fake_server), num_instructions=3, min_length=60, max_length=200
        )
    distiset = pipeline.run(use_cache=False)

    evolved = distiset["evol_instruct_0"]["train"]
    for original, chain, answers in zip(
        evolved["instruction"], evolved["evolved_instructions"], evolved["answers"]
    ):
        assert len(chain) == 2
        assert chain[0].startswith(original) and chain[1].startswith(chain[0])
        assert answers == [f"Echo: {instruction}" for instruction in chain]
    improved = distiset["evol_quality_0"]["train"]["evolved_response"]
    assert improved[0].startswith("4. ") and improved[1].startswith("Mars. ")
    generated = distiset["evol_complexity_generator_0"]["train"]["instruction"]
    assert len(generated) == 3
    assert all(60 <= len(text) <= 200 for text in generated)
    assert all(text.startswith("How are ") for text in generated)  # evolved from a fresh start


def test_magpie_task_and_generator_on_a_raw_prompt_server(fake_server: FakeServer) -> None:
    with Pipeline(name="magpie") as pipeline:
        load = LoadDataFromDicts(data=[{"topic": "a"}, {"topic": "b"}])
        magpie = Magpie(
            llm=loopback_llm(fake_server, magpie_pre_query_template="qwen2"),
            n_turns=2,
            include_system_prompt=True,
            system_prompt=["You are a gardener.", "You are a baker."],
        )
        load >> magpie
        MagpieGenerator(
            llm=loopback_llm(fake_server, magpie_pre_query_template="llama3"),
            num_rows=3,
            batch_size=2,
            only_instruction=True,
        )
    distiset = pipeline.run(use_cache=False)

    for conversation in distiset["magpie_0"]["train"]["conversation"]:
        assert [m["role"] for m in conversation] == [
            "system",
            "user",
            "assistant",
            "user",
            "assistant",
        ]
        assert conversation[0]["content"] in ("You are a gardener.", "You are a baker.")
        assert conversation[1]["content"] in USER_QUESTIONS
        assert conversation[3]["content"] != conversation[1]["content"]
        assert conversation[2]["content"] == f"Echo: {conversation[1]['content']}"
    instructions = distiset["magpie_generator_0"]["train"]["instruction"]
    assert len(instructions) == 3 and set(instructions) <= set(USER_QUESTIONS)

    raw = [r.body["prompt"] for r in completion_requests(fake_server)]
    assert len(raw) == 2 * 2 + 3  # two user turns per conversation, one per generated row
    chatml = [prompt for prompt in raw if prompt.startswith("<|im_start|>system\n")]
    assert len(chatml) == 4 and all(p.endswith("<|im_end|>\n<|im_start|>user\n") for p in chatml)
    llama3 = [prompt for prompt in raw if not prompt.startswith("<|im_start|>")]
    assert llama3 == ["<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"] * 3
    # The assistant's turns are ordinary chat completions.
    assert len(chat_requests(fake_server)) == 4
    assert all(r.body["messages"][-1]["role"] == "user" for r in chat_requests(fake_server))


# -- resume ----------------------------------------------------------------------------------


def drop_stored_batches(pipeline: Pipeline, step_name: str) -> None:
    """Deletes a step's stored output, keeping its request journal (as after a kill)."""
    [folder] = [
        p for p in (pipeline.cache_dir / "steps").iterdir() if p.name.startswith(f"{step_name}-")
    ]
    journal = folder / "requests.jsonl"
    assert journal.stat().st_size > 0
    for path in folder.iterdir():
        if path != journal:
            path.unlink() if path.is_file() else shutil.rmtree(path)


def rows_of(distiset: Any, name: str) -> list[dict]:
    rows = distiset[name]["train"].to_list()
    for row in rows:
        row.pop("potstill_metadata")
    return rows


def test_a_resumed_evol_run_resends_no_answered_request(fake_server: FakeServer) -> None:
    with Pipeline(name="evol-resume") as pipeline:
        load = LoadDataFromDicts(
            data=[{"instruction": f"Question {i}?"} for i in range(4)], batch_size=2
        )
        load >> EvolInstruct(
            llm=loopback_llm(fake_server),
            num_evolutions=2,
            generate_answers=True,
            input_batch_size=2,
        )
        EvolInstructGenerator(
            llm=loopback_llm(fake_server), num_instructions=3, min_length=10, max_length=300
        )
    first = pipeline.run()
    sent = len(fake_server.requests)
    assert sent == 4 * 3 + 3  # (2 evolutions + 1 answer) per row; generator: one round

    for step in ("evol_instruct_0", "evol_instruct_generator_0"):
        drop_stored_batches(pipeline, step)
    second = pipeline.run()
    assert len(fake_server.requests) == sent  # every answer came from the journal
    for name in ("evol_instruct_0", "evol_instruct_generator_0"):
        assert rows_of(second, name) == rows_of(first, name)


def test_a_resumed_run_on_a_synchronous_llm_asks_nothing_again(tmp_path: Path) -> None:
    llm = scripted(ScriptedLLM, rewrite)
    with Pipeline(name="evol-resume-sync") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": f"q{i}"} for i in range(3)])
        load >> EvolInstruct(llm=llm, num_evolutions=2, store_evolutions=True)
    first = pipeline.run()
    assert len(llm.conversations) == 6
    drop_stored_batches(pipeline, "evol_instruct_0")
    second = pipeline.run()
    assert len(llm.conversations) == 6
    assert rows_of(second, "default") == rows_of(first, "default")
