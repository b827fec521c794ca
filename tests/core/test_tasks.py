"""Tasks: format_input/format_output, num_generations, group_generations, raw outputs,
failures kept in potstill_metadata, usage; TextGeneration, ChatGeneration,
GenerateEmbeddings."""

from __future__ import annotations

import json
import logging
from typing import Any, Optional

import pytest
from tests.core.fakes import (
    EchoLLM,
    HiddenStateLLM,
    LoadCounter,
    SleepyAsyncLLM,
    expected_embedding,
)

from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import (
    ChatGeneration,
    GenerateEmbeddings,
    GeneratorTask,
    Task,
    TextGeneration,
)
from potstill.steps.tasks.base import METADATA_COLUMN


class Reverse(Task):
    """Asks to reverse `word`; parses `"<text> #<i>"` answers into `reversed` and `index`.

    An answer containing `bad` cannot be parsed.
    """

    @property
    def inputs(self) -> list[str]:
        return ["word"]

    @property
    def outputs(self) -> list[str]:
        return ["reversed", "index", "model_name"]

    def format_input(self, input: dict[str, Any]) -> list[dict[str, str]]:
        return [{"role": "user", "content": input["word"][::-1]}]

    def format_output(
        self, output: Optional[str], input: Optional[dict[str, Any]] = None
    ) -> dict[str, Any]:
        if output is None:
            return {"reversed": None, "index": None}
        if "bad" in output:
            raise ValueError(f"cannot parse {output!r}")
        text, index = output.rsplit(" #", 1)
        assert input is not None
        return {"reversed": f"{text} (from {input['word']})", "index": int(index)}


def process(task: Task, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    task.load()
    return [row for chunk in task.process(rows) for row in chunk]


# -- the Task machinery ----------------------------------------------------------------------


def test_format_input_and_format_output_with_the_right_input_row() -> None:
    task = Reverse(name="rev", llm=EchoLLM(model="m"))

    out = process(task, [{"word": "abc"}, {"word": "xyz"}])

    assert [(r["word"], r["reversed"], r["index"], r["model_name"]) for r in out] == [
        ("abc", "cba (from abc)", 0, "m"),
        ("xyz", "zyx (from xyz)", 0, "m"),
    ]


def test_task_load_loads_its_llm() -> None:
    LoadCounter.reset()
    task = Reverse(llm=EchoLLM())
    assert not task.llm.is_loaded

    task.load()

    assert task.llm.is_loaded
    assert LoadCounter.loads == 1
    task.unload()
    assert not task.llm.is_loaded


def test_num_generations_gives_one_row_per_generation() -> None:
    task = Reverse(llm=EchoLLM(), num_generations=3)

    out = process(task, [{"word": "ab"}, {"word": "cd"}])

    assert [(r["word"], r["index"]) for r in out] == [
        ("ab", 0),
        ("ab", 1),
        ("ab", 2),
        ("cd", 0),
        ("cd", 1),
        ("cd", 2),
    ]
    assert [r[METADATA_COLUMN]["raw_output_reverse_0"] for r in out[:3]] == [
        "ba #0",
        "ba #1",
        "ba #2",
    ]


def test_group_generations_gives_one_row_with_lists() -> None:
    task = Reverse(name="rev", llm=EchoLLM(), num_generations=3, group_generations=True)

    [row] = process(task, [{"word": "ab"}])

    assert row["word"] == "ab"
    assert row["index"] == [0, 1, 2]
    assert row["reversed"] == ["ba (from ab)"] * 3
    assert row["model_name"] == "echo-sync"
    metadata = row[METADATA_COLUMN]
    assert metadata["raw_output_rev"] == ["ba #0", "ba #1", "ba #2"]
    assert metadata["statistics_rev"] == {
        "input_tokens": [1, 1, 1],
        "output_tokens": [2, 2, 2],
        "cost": [None, None, None],  # a test LLM has no price
    }


@pytest.mark.parametrize("add_raw_output", [True, False])
def test_add_raw_output_and_raw_input(add_raw_output: bool) -> None:
    task = Reverse(name="rev", llm=EchoLLM(), add_raw_output=add_raw_output, add_raw_input=False)

    [row] = process(task, [{"word": "ab"}])

    metadata = row[METADATA_COLUMN]
    assert ("raw_output_rev" in metadata) is add_raw_output
    if add_raw_output:
        assert metadata["raw_output_rev"] == "ba #0"
    assert "raw_input_rev" not in metadata


def test_raw_input_is_the_formatted_prompt() -> None:
    task = Reverse(name="rev", llm=EchoLLM())

    [row] = process(task, [{"word": "ab"}])

    assert row[METADATA_COLUMN]["raw_input_rev"] == [{"role": "user", "content": "ba"}]


def test_none_generation_gives_none_columns_and_keeps_the_error() -> None:
    task = TextGeneration(name="gen", llm=EchoLLM())

    out = process(task, [{"instruction": "fine"}, {"instruction": "fail please"}])

    assert out[0]["generation"] == "fine #0"
    assert out[1]["generation"] is None
    assert out[1]["model_name"] == "echo-sync"
    metadata = out[1][METADATA_COLUMN]
    assert metadata["raw_output_gen"] is None
    assert "cannot answer" in metadata["error_gen"]
    assert out[0][METADATA_COLUMN]["error_gen"] is None


def test_format_output_error_gives_none_columns_and_keeps_the_raw_output(
    caplog: pytest.LogCaptureFixture,
) -> None:
    task = Reverse(name="rev", llm=EchoLLM())

    with caplog.at_level(logging.WARNING, logger="potstill"):
        out = process(task, [{"word": "dab"}, {"word": "ok"}])

    bad, good = out
    assert bad["reversed"] is None and bad["index"] is None
    assert bad["model_name"] == "echo-sync"
    assert bad[METADATA_COLUMN]["raw_output_rev"] == "bad #0"
    assert "format_output failed" in bad[METADATA_COLUMN]["error_rev"]
    assert "cannot parse" in bad[METADATA_COLUMN]["error_rev"]
    assert good["reversed"] == "ko (from ok)"
    assert any("rev" in r.getMessage() and "cannot parse" in r.getMessage() for r in caplog.records)


def test_format_input_error_keeps_the_row_with_none_outputs() -> None:
    task = TextGeneration(name="gen", llm=EchoLLM())

    out = process(task, [{"instruction": 42}, {"instruction": "fine"}])

    assert [r["generation"] for r in out] == [None, "fine #0"]
    assert out[0]["instruction"] == 42
    error = out[0][METADATA_COLUMN]["error_gen"]
    assert "format_input failed" in error
    assert "`instruction` must be a string" in error
    assert "input_mappings" in error  # says how to fix it


def test_token_usage_is_written_to_metadata() -> None:
    task = TextGeneration(name="gen", llm=EchoLLM(), num_generations=2)

    out = process(task, [{"instruction": "one two three"}])

    assert [r[METADATA_COLUMN]["statistics_gen"] for r in out] == [
        {"input_tokens": 3, "output_tokens": 4, "cost": None},
        {"input_tokens": 3, "output_tokens": 4, "cost": None},
    ]


def test_async_llm_task_keeps_usage_and_isolates_failures() -> None:
    task = TextGeneration(name="gen", llm=SleepyAsyncLLM(max_retries=0), num_generations=2)

    out = process(task, [{"instruction": "a b"}, {"instruction": "boom"}])

    assert [r["generation"] for r in out] == ["a b #0", "a b #1", None, None]
    # usage of a request with two generations is reported on the first one
    assert [r[METADATA_COLUMN]["statistics_gen"]["input_tokens"] for r in out] == [
        2,
        None,
        None,
        None,
    ]
    assert "boom" in out[2][METADATA_COLUMN]["error_gen"]


def test_existing_metadata_is_kept_across_tasks() -> None:
    with Pipeline(name="metadata-chain") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "x"}])
        first = TextGeneration(name="first", llm=EchoLLM())
        second = TextGeneration(
            name="second",
            llm=EchoLLM(),
            input_mappings={"instruction": "generation"},
            output_mappings={"generation": "second_generation"},
        )
        load >> first >> second

    [row] = pipeline.run(use_cache=False)["default"]["train"].to_list()

    assert row["second_generation"] == "x #0 #0"
    assert set(row[METADATA_COLUMN]) >= {"raw_output_first", "raw_output_second"}


# -- TextGeneration ----------------------------------------------------------------------------


def test_text_generation_columns() -> None:
    task = TextGeneration(llm=EchoLLM())

    assert task.inputs == {"instruction": True, "system_prompt": False}
    assert task.outputs == ["generation", "model_name"]


@pytest.mark.parametrize(
    ("field", "row", "expected"),
    [
        (None, {"instruction": "q"}, [{"role": "user", "content": "q"}]),
        (
            "field",
            {"instruction": "q"},
            [{"role": "system", "content": "field"}, {"role": "user", "content": "q"}],
        ),
        (
            None,
            {"instruction": "q", "system_prompt": "col"},
            [{"role": "system", "content": "col"}, {"role": "user", "content": "q"}],
        ),
        (
            "field",
            {"instruction": "q", "system_prompt": "col"},
            [{"role": "system", "content": "col"}, {"role": "user", "content": "q"}],
        ),
    ],
)
def test_text_generation_system_prompt_from_column_or_field(
    field: Optional[str], row: dict[str, Any], expected: list[dict[str, str]]
) -> None:
    task = TextGeneration(llm=EchoLLM(), system_prompt=field)

    assert task.format_input(row) == expected


def test_text_generation_use_system_prompt_false() -> None:
    task = TextGeneration(llm=EchoLLM(), system_prompt="x", use_system_prompt=False)

    assert task.format_input({"instruction": "q", "system_prompt": "y"}) == [
        {"role": "user", "content": "q"}
    ]


def test_text_generation_system_prompt_reaches_the_llm() -> None:
    task = TextGeneration(name="gen", llm=EchoLLM(), system_prompt="Be brief.")

    [row] = process(task, [{"instruction": "q"}])

    assert task.llm._calls[-1] == [
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "q"}]
    ]
    assert row["generation"] == "q #0"
    assert row["model_name"] == "echo-sync"


def test_text_generation_in_a_pipeline_with_system_prompt_column() -> None:
    with Pipeline(name="tg") as pipeline:
        load = LoadDataFromDicts(
            data=[
                {"instruction": "a", "system_prompt": "s1"},
                {"instruction": "b", "system_prompt": None},
            ]
        )
        generate = TextGeneration(llm=EchoLLM(), system_prompt="default")
        load >> generate

    train = pipeline.run(use_cache=False)["default"]["train"]

    assert train["generation"] == ["a #0", "b #0"]
    prompts = [row[METADATA_COLUMN][f"raw_input_{generate.name}"] for row in train]
    assert [p[0]["content"] for p in prompts] == ["s1", "default"]


def test_text_generation_conversation_as_instruction_is_deprecated() -> None:
    task = TextGeneration(llm=EchoLLM())
    chat = [{"role": "user", "content": "hi"}]

    with pytest.warns(DeprecationWarning, match="ChatGeneration"):
        assert task.format_input({"instruction": chat}) == chat


# -- ChatGeneration ----------------------------------------------------------------------------


def test_chat_generation_continues_the_conversation() -> None:
    task = ChatGeneration(name="chat", llm=EchoLLM())
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "answer"},
        {"role": "user", "content": "second"},
    ]

    [row] = process(task, [{"messages": messages}])

    assert task.inputs == ["messages"]
    assert task.outputs == ["generation", "model_name"]
    assert task.llm._calls[-1] == [messages]
    assert row["generation"] == "second #0"
    assert row["model_name"] == "echo-sync"


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        (
            [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
            "last message must be from the user",
        ),
        ("not a conversation", "must be a list"),
    ],
)
def test_chat_generation_bad_messages_give_none_with_the_reason(
    messages: Any, expected: str
) -> None:
    task = ChatGeneration(name="chat", llm=EchoLLM())

    [row] = process(task, [{"messages": messages}])

    assert row["generation"] is None
    assert expected in row[METADATA_COLUMN]["error_chat"]
    assert "'chat'" in row[METADATA_COLUMN]["error_chat"]


# -- GenerateEmbeddings -----------------------------------------------------------------------------


def test_generate_embeddings_uses_the_last_hidden_state() -> None:
    task = GenerateEmbeddings(name="embed", llm=HiddenStateLLM())
    task.load()

    [rows] = list(task.process([{"text": "abc"}, {"text": [{"role": "user", "content": "hello"}]}]))

    assert task.inputs == ["text"]
    assert task.outputs == ["embedding", "model_name"]
    assert rows[0]["embedding"] == expected_embedding("abc")
    assert rows[1]["embedding"] == expected_embedding("hello")
    assert all(isinstance(v, float) for v in rows[0]["embedding"])
    assert rows[0]["model_name"] == "hidden-state-model"
    json.dumps(rows)  # plain Python values, not numpy


def test_generate_embeddings_in_a_pipeline() -> None:
    with Pipeline(name="embeddings") as pipeline:
        load = LoadDataFromDicts(
            data=[{"text": "ab"}, {"text": "abcd"}, {"text": "a"}], batch_size=2
        )
        embed = GenerateEmbeddings(llm=HiddenStateLLM())
        load >> embed

    train = pipeline.run(use_cache=False)["default"]["train"]

    assert train["embedding"] == [expected_embedding(t) for t in ("ab", "abcd", "a")]
    assert train["model_name"] == ["hidden-state-model"] * 3


# -- GeneratorTask --------------------------------------------------------------------------------


class AskQuestions(GeneratorTask):
    """Generates one question per topic with its LLM, as the root of a pipeline."""

    topics: list[str]

    @property
    def outputs(self) -> list[str]:
        return ["instruction", "model_name"]

    def format_output(
        self, output: Optional[str], input: Optional[dict[str, Any]] = None
    ) -> dict[str, Any]:
        return {"instruction": output}

    def process(self, offset: int = 0) -> Any:
        for start in range(offset, len(self.topics), self.batch_size or 1):
            topics = self.topics[start : start + (self.batch_size or 1)]
            outputs = self.llm.generate(
                inputs=[[{"role": "user", "content": f"about {t}"}] for t in topics]
            )
            rows = [
                {**self.format_output(o[0]), "model_name": self.llm.model_name} for o in outputs
            ]
            yield rows, start + len(topics) >= len(self.topics)


def test_generator_task_loads_its_llm_and_feeds_a_pipeline() -> None:
    with Pipeline(name="generator-task") as pipeline:
        ask = AskQuestions(llm=EchoLLM(), topics=["cats", "dogs", "owls"], batch_size=2)
        answer = TextGeneration(name="answer", llm=EchoLLM(), output_mappings={"model_name": "m"})
        ask >> answer

    train = pipeline.run()["default"]["train"]

    assert ask.llm.is_loaded is False  # unloaded after the run
    assert train["instruction"] == ["about cats #0", "about dogs #0", "about owls #0"]
    assert train["generation"] == ["about cats #0 #0", "about dogs #0 #0", "about owls #0 #0"]
