"""UltraFeedback on the embedded SmolLM2 (llama.cpp): a real model's answer goes through the
parser. The tiny model rarely follows the format, so only the structure is asserted: one
entry per generation, each an int from 1 to 5 or `None`, and whenever a value is missing the
raw answer and the reason are in `potstill_metadata`."""

from __future__ import annotations

import pytest

from potstill.llms import LlamaCppLLM
from potstill.llms.llamacpp import EMBEDDED_MODEL_FILENAME
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import UltraFeedback
from potstill.steps.tasks.base import METADATA_COLUMN

pytest.importorskip("llama_cpp")


def test_ultrafeedback_on_the_embedded_model() -> None:
    rows = [{"instruction": "What is 2 + 2?", "generations": ["4", "22"]}]
    with Pipeline(name="judge-smollm2") as pipeline:
        load = LoadDataFromDicts(data=rows)
        judge = UltraFeedback(name="uf", llm=LlamaCppLLM(n_threads=1, n_ctx=1024))
        load >> judge

    distiset = pipeline.run(
        params={"uf": {"llm": {"generation_kwargs": {"max_new_tokens": 48, "temperature": 0.0}}}}
    )

    (row,) = distiset["default"]["train"]
    assert row["instruction"] == "What is 2 + 2?"
    assert row["model_name"] == EMBEDDED_MODEL_FILENAME
    assert len(row["ratings"]) == len(row["rationales"]) == 2
    assert all(r is None or (type(r) is int and 1 <= r <= 5) for r in row["ratings"])
    assert all(r is None or isinstance(r, str) for r in row["rationales"])
    metadata = row[METADATA_COLUMN]
    assert metadata["statistics_uf"]["input_tokens"] > 300  # the whole judge prompt
    # SmolLM2-135M does not follow the format (greedy decoding, so always the same answer):
    # the row is kept, the missing ratings are None, the raw answer and the reason are kept
    assert None in row["ratings"]
    assert isinstance(metadata["raw_output_uf"], str) and metadata["raw_output_uf"]
    assert metadata["error_uf"].startswith("could not parse the answer: ")


def test_ultrafeedback_json_verdicts_parse_on_the_embedded_model() -> None:
    rows = [
        {"instruction": "What is 2 + 2?", "generations": ["4", "22"]},
        {"instruction": "Name a colour.", "generations": ["Blue.", "A colour.", "Red"]},
    ]
    with Pipeline(name="judge-smollm2-json") as pipeline:
        load = LoadDataFromDicts(data=rows)
        judge = UltraFeedback(
            name="uf",
            llm=LlamaCppLLM(n_threads=1, n_ctx=1024),
            use_default_structured_output=True,
        )
        load >> judge

    distiset = pipeline.run(
        params={"uf": {"llm": {"generation_kwargs": {"max_new_tokens": 160, "temperature": 0.0}}}}
    )

    # The same model that cannot follow the text format above: llama.cpp's grammar keeps
    # its verdict to the schema, one rating from 1 to 5 per answer.
    for row in distiset["default"]["train"]:
        count = len(row["generations"])
        assert row[METADATA_COLUMN]["error_uf"] is None
        assert len(row["ratings"]) == len(row["rationales"]) == count
        assert all(type(r) is int and 1 <= r <= 5 for r in row["ratings"])
        assert all(isinstance(r, str) and len(r) <= 160 for r in row["rationales"])
