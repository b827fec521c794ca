"""Fixes to shared code found while adding the hosted providers."""

from __future__ import annotations

import pytest

from potstill.llms import TogetherLLM


class FailsAfterBaseLoad(TogetherLLM):
    def load(self) -> None:
        super().load()
        raise RuntimeError("the provider-specific part of load failed")


def test_a_load_that_fails_after_super_load_leaves_the_llm_unloaded() -> None:
    llm = FailsAfterBaseLoad(model="m", api_key="k")

    with pytest.raises(RuntimeError, match="provider-specific"):
        llm.load()

    assert not llm.is_loaded
