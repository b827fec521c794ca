"""`one_shot_encoder`: the text `JSONEncoder.encode` writes, with less work per call."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from potstill.utils.canonical_json import canonical_json, canonical_sha256, one_shot_encoder

VALUES: list[Any] = [
    "just text, café \ud83d",
    {"b": [1, 2.5, float("nan"), float("inf"), None, True], "a": {"z": "é", "y": ()}},
    [{"role": "user", "content": 'q\n"quoted"'}, {}, 1, None],
    {1: "int key", "text": object},
    1e20,
]
OPTIONS: list[dict[str, Any]] = [
    {},
    {"sort_keys": True, "default": repr},
    {"ensure_ascii": False, "check_circular": False, "default": repr},
]


@pytest.mark.parametrize("options", OPTIONS, ids=["default", "sorted", "unicode"])
@pytest.mark.parametrize("value", VALUES)
def test_the_text_is_what_the_encoder_writes(options: dict[str, Any], value: Any) -> None:
    encoder = json.JSONEncoder(**options)
    try:
        expected = encoder.encode(value)
    except TypeError as error:  # e.g. an object without `default`
        with pytest.raises(type(error)):
            one_shot_encoder(encoder)(value)
        return
    assert one_shot_encoder(encoder)(value) == expected


def test_a_cycle_is_still_reported_when_the_encoder_checks_for_them() -> None:
    looped: list[Any] = []
    looped.append(looped)
    encode = one_shot_encoder(json.JSONEncoder())

    with pytest.raises(ValueError, match="Circular reference"):
        encode(looped)
    assert encode([1, [2]]) == "[1, [2]]"  # and the next call is not affected


@pytest.mark.parametrize(
    "value",
    [
        {"data": [{"instruction": f"q{i}", "n": i} for i in range(2500)], "name": "load"},
        [list(range(1500)), {"b": 1, "a": (2, 3)}],
        {1: "int keys", 2: [None] * 1200},
        {1: "mixed", "a": "keys"},  # cannot be sorted: the keys are written as text
        "text",
    ],
    ids=["long rows", "long list", "int keys", "mixed keys", "text"],
)
def test_the_streamed_hash_is_the_hash_of_the_canonical_text(value: Any) -> None:
    expected = hashlib.sha256(canonical_json(value).encode("ascii")).hexdigest()

    assert canonical_sha256(value).hexdigest() == expected
