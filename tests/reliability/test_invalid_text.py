"""Text that is not valid UTF-8 (lone surrogates) is stored safely and costs no other row."""

from __future__ import annotations

import logging

import pytest
from pydantic import validate_call

from potstill.llms import AsyncLLM
from potstill.llms.typing import GenerateOutput
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration
from potstill.steps.tasks.typing import ChatType

CUT_EMOJI = "\ud83d"  # the first half of a surrogate pair, as a tokenizer may cut it


class CutEmojiLLM(AsyncLLM):
    """Answers `ok <prompt>`, with half an emoji at the end for prompts containing `cut`."""

    calls: int = 0

    @property
    def model_name(self) -> str:
        return "cut-emoji"

    @validate_call
    async def agenerate(self, input: ChatType) -> GenerateOutput:
        """Answers.

        Args:
            input: the conversation.
        """
        self.calls += 1
        text = input[-1]["content"]
        return [f"ok {text}" + (CUT_EMOJI if "cut" in text else "")]


def pipeline_for(data: list[dict], llm: CutEmojiLLM) -> Pipeline:
    with Pipeline(name="invalid-text") as pipeline:
        load = LoadDataFromDicts(data=data, batch_size=5)
        load >> TextGeneration(llm=llm, input_batch_size=5)
    return pipeline


def test_an_answer_with_a_lone_surrogate_costs_no_other_row(
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = [{"instruction": f"q{i}"} for i in range(10)]
    data[3]["instruction"] = "cut here"
    llm = CutEmojiLLM()
    with caplog.at_level(logging.WARNING, logger="potstill"):
        rows = pipeline_for(data, llm).run()["default"]["train"]
    expected = [f"ok q{i}" for i in range(10)]
    expected[3] = "ok cut here\ufffd"  # stored with the replacement character
    assert rows["generation"] == expected
    assert llm.usage.failed_requests == 0
    assert "row 3['generation']" in caplog.text and "U+FFFD" in caplog.text

    again = CutEmojiLLM()
    rows = pipeline_for(data, again).run()["default"]["train"]
    assert rows["generation"] == expected
    assert again.calls == 0  # every answer, the odd one too, was kept


def test_a_lone_surrogate_in_an_input_row_is_stored_and_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = [{"instruction": f"q{i}"} for i in range(10)]
    data[7]["instruction"] = "q7 " + CUT_EMOJI
    llm = CutEmojiLLM()
    pipeline = pipeline_for(data, llm)
    with caplog.at_level(logging.WARNING, logger="potstill"):
        rows = pipeline.run()["default"]["train"]
    assert rows["instruction"][7] == "q7 \ufffd"
    assert rows["generation"][:7] == [f"ok q{i}" for i in range(7)]
    assert rows["generation"][8:] == ["ok q8", "ok q9"]
    # The configuration file is written, with the odd text replaced, and the row named.
    assert (pipeline.cache_dir / "pipeline.yaml").is_file()
    assert "['data'][7]['instruction']" in caplog.text
