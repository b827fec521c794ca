"""`potstill.llms.openai_format`: reading OpenAI-shaped answers, without a server."""

from __future__ import annotations

from typing import Any

import pytest

from potstill.llms.openai_format import (
    parse_chat_completion,
    parse_text_completion,
    wire_response_format,
)


def choice(index: int, content: Any, finish_reason: str = "stop", **extra: Any) -> dict[str, Any]:
    return {
        "index": index,
        "message": {"role": "assistant", "content": content, **extra},
        "finish_reason": finish_reason,
    }


def completion(*choices: dict[str, Any], usage: Any = None) -> dict[str, Any]:
    usage = usage if usage is not None else {"prompt_tokens": 5, "completion_tokens": 9}
    return {"id": "c", "object": "chat.completion", "choices": list(choices), "usage": usage}


def test_choices_in_index_order_with_the_usage_on_the_first() -> None:
    answer = completion(choice(1, "second"), choice(0, "first"))

    generations = parse_chat_completion(answer)

    assert generations == ["first", "second"]
    assert generations.input_tokens == [5, None]
    assert generations.output_tokens == [9, None]
    assert generations.errors == [None, None]
    assert generations.logprobs == [None, None]


def test_a_choice_without_content_is_none_with_its_reason() -> None:
    answer = completion(
        choice(0, None, "length"), choice(1, None, "stop", refusal="I can't help with that.")
    )

    generations = parse_chat_completion(answer)

    assert generations == [None, None]
    assert generations.errors == [
        "no content (finish_reason=length)",
        "refused: I can't help with that.",
    ]


def test_an_empty_text_is_kept_unless_blank_means_empty() -> None:
    answer = completion(choice(0, ""))

    assert parse_chat_completion(answer) == [""]
    blank = parse_chat_completion(answer, blank_is_empty=True)
    assert blank == [None]
    assert blank.errors == ["no content (finish_reason=stop)"]


def test_content_chunks_are_joined() -> None:
    chunks = [
        {"type": "thinking", "thinking": [{"type": "text", "text": "hmm"}]},
        {"type": "text", "text": "Madrid"},
        {"type": "text", "text": " it is."},
    ]

    assert parse_chat_completion(completion(choice(0, chunks))) == ["Madrid it is."]
    assert parse_chat_completion(completion(choice(0, [{"type": "image_url"}]))) == [None]


def test_logprobs_are_kept_when_asked() -> None:
    logprobs = {
        "content": [
            {
                "token": "Hi",
                "logprob": -0.1,
                "bytes": [72, 105],
                "top_logprobs": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105]}],
            }
        ]
    }
    answer = completion({**choice(0, "Hi"), "logprobs": logprobs})

    assert parse_chat_completion(answer).logprobs == [None]
    assert parse_chat_completion(answer, logprobs=True).logprobs == [
        [{"token": "Hi", "logprob": -0.1, "top_logprobs": [{"token": "Hi", "logprob": -0.1}]}]
    ]


def test_an_answer_without_choices_or_usage() -> None:
    generations = parse_chat_completion({"choices": None, "usage": None})

    assert generations == []
    assert generations.input_tokens == []


def test_text_completion() -> None:
    answer = {
        "choices": [{"index": 1, "text": "b"}, {"index": 0, "text": "a"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2},
    }

    generations = parse_text_completion(answer)

    assert generations == ["a", "b"]
    assert (generations.input_tokens, generations.output_tokens) == ([3, None], [2, None])


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        (None, None),
        ("text", {"type": "text"}),
        ("json", {"type": "json_object"}),
        ("json_object", {"type": "json_object"}),
        ({"type": "json_schema", "json_schema": {}}, {"type": "json_schema", "json_schema": {}}),
    ],
)
def test_wire_response_format(given: Any, sent: Any) -> None:
    assert wire_response_format(given) == sent
