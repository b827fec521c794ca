"""During a run, full garbage collections skip the objects from before it."""

from __future__ import annotations

import gc
from typing import Any

from potstill.llms.testing import FunctionLLM
from potstill.pipeline import Pipeline
from potstill.steps import LoadDataFromDicts
from potstill.steps.tasks import TextGeneration
from potstill.utils.gc_freeze import collections_paused, older_objects_frozen


def _run_recording_freeze_counts() -> list[int]:
    seen: list[int] = []

    def answer(input: Any, **kwargs: Any) -> str:
        seen.append(gc.get_freeze_count())
        return "ok"

    with Pipeline(name="gc-freeze") as pipeline:
        LoadDataFromDicts(data=[{"instruction": "hi"}] * 3) >> TextGeneration(
            llm=FunctionLLM(function=answer)
        )
    pipeline.run(use_cache=False)
    return seen


def test_objects_from_before_a_run_are_frozen_during_it_and_handed_back_after() -> None:
    seen = _run_recording_freeze_counts()

    assert len(seen) == 3 and min(seen) > 0
    assert gc.get_freeze_count() == 0


def test_a_program_that_froze_objects_itself_is_left_alone() -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        seen = _run_recording_freeze_counts()
        # Nothing more was frozen (objects made since would have been), nothing unfrozen.
        assert len(seen) == 3 and max(seen) <= frozen
        assert 0 < gc.get_freeze_count() <= frozen
    finally:
        gc.unfreeze()


def test_overlapping_blocks_unfreeze_when_the_last_one_ends() -> None:
    with older_objects_frozen():
        frozen = gc.get_freeze_count()
        with older_objects_frozen():
            assert gc.get_freeze_count() == frozen
        assert gc.get_freeze_count() == frozen > 0
    assert gc.get_freeze_count() == 0


class _Made:
    """An object the collector tracks, made inside a paused block."""


def test_no_collection_runs_while_collections_are_paused_and_the_collector_is_back_after() -> None:
    collections: list[int] = []

    def count(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    gc.callbacks.append(count)
    try:
        with collections_paused():
            made = [_Made() for _ in range(50_000)]  # would trigger dozens of collections
            assert not gc.isenabled()
    finally:
        gc.callbacks.remove(count)
    assert collections == []
    assert gc.isenabled()
    # Outside a run, what the block made is moved to the oldest generation, not left frozen.
    assert gc.get_freeze_count() == 0
    assert any(obj is made[0] for obj in gc.get_objects(generation=2))


def test_inside_a_run_what_a_paused_block_made_is_set_aside_until_the_run_ends() -> None:
    with older_objects_frozen():
        before = gc.get_freeze_count()
        with collections_paused():
            made = [_Made() for _ in range(1_000)]
        assert gc.get_freeze_count() >= before + len(made)
    assert gc.get_freeze_count() == 0


def test_a_paused_block_leaves_a_disabled_collector_disabled() -> None:
    gc.disable()
    try:
        with collections_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
