"""A whole pipeline against a server that misbehaves in every way at once."""

from __future__ import annotations

from tests.fake_server import FakeServer, Fault
from tests.reliability.helpers import assert_exactly_once_and_aligned, generation_pipeline

ROWS = 120


def test_faults_lose_no_row_and_keep_rows_aligned(fake_server: FakeServer) -> None:
    fake_server.configure(
        seed=7,
        faults=[
            Fault(status=429, ratio=0.10, retry_after=0.05),
            Fault(status=500, ratio=0.10),
            Fault(status=0, ratio=0.05, kind="drop"),
            Fault(status=0, ratio=0.05, kind="malformed"),
            Fault(status=0, ratio=0.05, kind="slow", delay_s=1.0),
        ],
    )
    pipeline, _ = generation_pipeline(
        fake_server, ROWS, max_retries=8, max_concurrent_requests=8, timeout=0.4
    )
    distiset = pipeline.run(use_cache=False)

    rows = distiset["default"]["train"]
    assert_exactly_once_and_aligned(rows, ROWS)
    outcomes = {r.outcome for r in fake_server.requests}
    assert {"status", "drop", "malformed", "ok"} <= outcomes  # the faults really happened
    # The client never had more than 8 requests open; requests it abandoned after its 0.4 s
    # timeout can still be running on the server, on top of those.
    abandoned = sum(1 for r in fake_server.requests if r.end - r.start >= 0.9)
    assert abandoned > 0
    assert fake_server.state.peak_concurrency <= 8 + abandoned
    # Every row got an answer; a row was answered twice only when the client had already
    # abandoned the first (slow) attempt.
    ok = [r.body["messages"][0]["content"] for r in fake_server.requests if r.outcome == "ok"]
    assert set(ok) == {f"q{i}" for i in range(ROWS)}
    assert len(ok) - ROWS <= abandoned


def test_a_request_that_keeps_failing_gives_none_with_its_error(fake_server: FakeServer) -> None:
    pipeline, _ = generation_pipeline(fake_server, 3, max_retries=1)
    pipeline.dag.steps["load_data_from_dicts_0"].data[1]["instruction"] = "q1 [[status=503]]"
    rows = pipeline.run(use_cache=False)["default"]["train"]
    assert rows["generation"] == ["Echo: q0", None, "Echo: q2"]
    metadata = rows["potstill_metadata"][1]
    assert "503" in metadata["error_text_generation_0"]
    assert rows["potstill_metadata"][0]["error_text_generation_0"] is None
