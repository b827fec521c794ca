"""`one_shot_encoder`: the text `JSONEncoder.encode` writes, with less work per call."""

from __future__ import annotations

import json
from typing import Any

import pytest

from potstill.utils.canonical_json import one_shot_encoder

VALUES: list[Any] = [
    "just text, café \ud83d",
    {"b": [1, 2.5, float("nan"), float("inf"), None, True], "a": {"z": "é", "y": ()}},
    [{"role": "user", "content": "q\n\"quoted\""}, {}, 1, None],
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
