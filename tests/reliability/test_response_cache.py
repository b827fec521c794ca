"""The opt-in response cache: a re-run over the same inputs makes no requests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import validate_call
from tests.fake_server import FakeServer
from tests.reliability.helpers import generation_pipeline, make_llm

from potstill.llms import AsyncLLM
from potstill.llms.typing import GenerateOutput
from potstill.steps.tasks.typing import ChatType

PROMPTS = [[{"role": "user", "content": f"cached {i}"}] for i in range(3)]


def generate(llm: Any, prompts: list, **kwargs: Any) -> list[list]:
    llm.load()
    try:
        return [list(g) for g in llm.generate_outputs(prompts, **kwargs)]
    finally:
        llm.unload()


def test_a_second_llm_with_the_same_config_makes_no_requests(
    fake_server: FakeServer, tmp_path: Path
) -> None:
    cache = str(tmp_path / "responses")
    first = generate(
        make_llm(fake_server, use_response_cache=True, response_cache_dir=cache), PROMPTS
    )
    assert len(fake_server.requests) == 3

    again = make_llm(fake_server, use_response_cache=True, response_cache_dir=cache)
    second = generate(again, PROMPTS)
    assert second == first
    assert len(fake_server.requests) == 3  # nothing new was sent
    assert again.usage.cached_requests == 3
    assert again.usage.requests == 0


def test_different_kwargs_or_inputs_are_different_entries(
    fake_server: FakeServer, tmp_path: Path
) -> None:
    cache = str(tmp_path / "responses")
    llm = make_llm(fake_server, use_response_cache=True, response_cache_dir=cache)
    generate(llm, PROMPTS[:1], temperature=0.5)
    generate(llm, PROMPTS[:1], temperature=0.7)
    generate(llm, PROMPTS[1:2], temperature=0.5)
    assert len(fake_server.requests) == 3
    generate(llm, PROMPTS[:1], temperature=0.5)
    assert len(fake_server.requests) == 3


def test_the_cache_is_off_by_default(fake_server: FakeServer) -> None:
    generate(make_llm(fake_server), PROMPTS[:1])
    generate(make_llm(fake_server), PROMPTS[:1])
    assert len(fake_server.requests) == 2


class CountingLLM(AsyncLLM):
    """Answers with a counter, so every request gets a different answer."""

    calls: int = 0

    @property
    def model_name(self) -> str:
        return "counting"

    @validate_call
    async def agenerate(self, input: ChatType) -> GenerateOutput:  # no native n: fanned out
        """Counts.

        Args:
            input: the conversation.
        """
        self.calls += 1
        return [f"answer {self.calls}"]


def test_num_generations_samples_stay_distinct(tmp_path: Path) -> None:
    cache = str(tmp_path / "responses")
    first_llm = CountingLLM(use_response_cache=True, response_cache_dir=cache)
    first = generate(first_llm, PROMPTS[:1], num_generations=3)
    assert sorted(first[0]) == ["answer 1", "answer 2", "answer 3"]

    second_llm = CountingLLM(use_response_cache=True, response_cache_dir=cache)
    second = generate(second_llm, PROMPTS[:1], num_generations=3)
    assert sorted(second[0]) == sorted(first[0])  # three distinct cached samples
    assert second_llm.calls == 0


def test_pipeline_option_caches_across_runs(
    fake_server: FakeServer, monkeypatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("POTSTILL_RESPONSE_CACHE_DIR", str(tmp_path / "responses"))
    pipeline, _ = generation_pipeline(fake_server, 5)
    pipeline.use_response_cache = True
    first = pipeline.run(use_cache=False)["default"]["train"]["generation"]
    assert len(fake_server.requests) == 5
    second = pipeline.run(use_cache=False)["default"]["train"]["generation"]
    assert second == first
    assert len(fake_server.requests) == 5


def test_failed_answers_are_not_cached(fake_server: FakeServer, tmp_path: Path) -> None:
    cache = str(tmp_path / "responses")
    prompts = [[{"role": "user", "content": "flaky [[fail_first=1 status=500]]"}]]
    assert generate(
        make_llm(fake_server, use_response_cache=True, response_cache_dir=cache, max_retries=0),
        prompts,
    ) == [[None]]
    assert generate(
        make_llm(fake_server, use_response_cache=True, response_cache_dir=cache, max_retries=0),
        prompts,
    ) == [["Echo: flaky"]]
    assert len(fake_server.requests) == 2


def test_identical_rows_in_a_pipeline_are_separate_requests(fake_server: FakeServer) -> None:
    # The journal (always on) keys answers by row: a repeated instruction is asked again.
    pipeline, _ = generation_pipeline(fake_server, 1)
    pipeline.dag.steps["load_data_from_dicts_0"].data = [{"instruction": "same"}] * 4
    pipeline.run(use_cache=False)
    assert len(fake_server.requests) == 4


def test_the_cache_tells_endpoints_apart_but_not_limits(
    fake_server: FakeServer, tmp_path: Path
) -> None:
    cache = str(tmp_path / "responses")
    generate(make_llm(fake_server, use_response_cache=True, response_cache_dir=cache), PROMPTS[:1])
    # Same endpoint, other limits and timeout: the cached answer is reused.
    generate(
        make_llm(
            fake_server,
            use_response_cache=True,
            response_cache_dir=cache,
            max_concurrent_requests=3,
            timeout=9,
            requests_per_minute=6000,
        ),
        PROMPTS[:1],
    )
    assert len(fake_server.requests) == 1
    # Another endpoint (same server under another URL spelling) is another cache entry.
    other = make_llm(fake_server, use_response_cache=True, response_cache_dir=cache)
    other.base_url = fake_server.openai_base_url.replace("127.0.0.1", "localhost")
    generate(other, PROMPTS[:1])
    assert len(fake_server.requests) == 2
