"""Provider batch jobs (`use_offline_batch_generation=True`) of OpenAILLM, AzureOpenAILLM and
AnthropicLLM, through their real SDKs against the loopback server's batch APIs, which answer
a job's requests as they answer online ones and return results out of input order. The
pipeline side (records, resume, retries online) is in `tests/reliability/test_batch_jobs.py`."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from anthropic.types.messages import MessageBatchIndividualResponse
from tests.fake_server import FakeServer
from tests.providers.contract import MADRID, SPAIN, chat, loaded, samples

from potstill.errors import PotstillUserError
from potstill.llms import AnthropicLLM, AsyncLLM, AzureOpenAILLM, OpenAILLM
from potstill.llms.anthropic import AnthropicBatchJobs, parse_batch_result
from potstill.llms.batch_jobs import JobRequest, request_kwargs
from potstill.llms.openai import OpenAIBatchJobs, batch_problem, parse_batch_line

POLL = 0.01  # seconds between checks of a pending job


@dataclass(frozen=True)
class Case:
    """A provider with a batch API: how to build its LLM, where the server keeps its jobs,
    and where its online requests go."""

    provider: str
    build: Callable[..., AsyncLLM]
    online_path: str
    native_n: bool

    def llm(self, server: FakeServer, **fields: Any) -> AsyncLLM:
        fields.setdefault("use_offline_batch_generation", True)
        fields.setdefault("offline_batch_generation_block_until_done", POLL)
        fields.setdefault("retry_backoff", 0.01)
        fields.setdefault("api_key", "test-key")
        return loaded(self.build(server, **fields))

    def jobs(self, server: FakeServer) -> list[Any]:
        return server.state.batches.jobs(self.provider)

    def online(self, server: FakeServer) -> list[Any]:
        return [r for r in server.requests if r.path.endswith(self.online_path)]


def _openai(server: FakeServer, **fields: Any) -> OpenAILLM:
    return OpenAILLM(model="gpt-test", base_url=server.openai_base_url, **fields)


def _azure(server: FakeServer, **fields: Any) -> AzureOpenAILLM:
    return AzureOpenAILLM(
        model="my-deployment",
        base_url=server.url,
        api_version="2024-10-21",
        **fields,
    )


def _anthropic(server: FakeServer, **fields: Any) -> AnthropicLLM:
    return AnthropicLLM(model="claude-test", base_url=server.url, **fields)


CASES = {
    "openai": Case("openai", _openai, "/chat/completions", native_n=True),
    "azure": Case("azure", _azure, "/chat/completions", native_n=True),
    "anthropic": Case("anthropic", _anthropic, "/v1/messages", native_n=False),
}


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> Case:
    return CASES[request.param]


# -- submit, poll, results ----------------------------------------------------------------


def test_a_batch_runs_as_one_job_and_its_answers_come_back_in_row_order(
    fake_server: FakeServer, case: Case, caplog: pytest.LogCaptureFixture
) -> None:
    fake_server.configure(batch_polls=3)
    llm = case.llm(fake_server)
    questions = [f"q{i}" for i in range(12)]

    with caplog.at_level(logging.INFO, logger="potstill"):
        outputs = llm.generate_outputs([chat(q) for q in questions])

    assert [list(output) for output in outputs] == [[f"Echo: {q}"] for q in questions]
    [job] = case.jobs(fake_server)
    assert job.ending == "completed" and len(job.requests) == 12
    # The server returns results out of input order: potstill matched them by custom id.
    assert [r.custom_id for r, _ in job.finished_results()] != [r.custom_id for r in job.requests]
    assert case.online(fake_server) == []  # nothing went through the online endpoint
    assert outputs[0].input_tokens[0] is not None  # usage came with the answers
    assert llm.usage.requests == 12 and llm.usage.failed_requests == 0
    assert f"Submitted batch job {job.id} (12 request(s))" in caplog.text
    assert f"Batch job {job.id}: " in caplog.text  # its statuses are logged as they change


def test_a_job_sends_exactly_the_requests_an_online_call_sends(
    fake_server: FakeServer, case: Case
) -> None:
    kwargs: dict[str, Any] = {"temperature": 0.3}
    kwargs["max_tokens" if case.provider == "anthropic" else "max_new_tokens"] = 64
    conversation = chat(SPAIN, system="Be brief.")

    online = case.llm(fake_server, use_offline_batch_generation=False)
    assert online.generate_outputs([conversation], 2, **kwargs)[0] == (
        samples(MADRID, 2) if case.native_n else [MADRID, MADRID]
    )
    sent_online = [r.body for r in case.online(fake_server)]
    batched = case.llm(fake_server).generate_outputs([conversation], 2, **kwargs)

    assert batched[0] == (samples(MADRID, 2) if case.native_n else [MADRID, MADRID])
    [job] = case.jobs(fake_server)
    assert [request.body for request in job.requests] == sent_online


def test_num_generations_of_several_inputs_stay_with_their_input(
    fake_server: FakeServer, case: Case
) -> None:
    outputs = case.llm(fake_server).generate_outputs([chat("a"), chat("b"), chat("c")], 3)
    for output, text in zip(outputs, "abc"):
        expected = samples(f"Echo: {text}", 3) if case.native_n else [f"Echo: {text}"] * 3
        assert output == expected
    [job] = case.jobs(fake_server)
    assert len(job.requests) == (3 if case.native_n else 9)


def test_a_batch_larger_than_the_provider_takes_is_split_into_jobs(
    fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(OpenAIBatchJobs, "max_requests", 2)
    outputs = CASES["openai"].llm(fake_server).generate_outputs([chat(f"q{i}") for i in range(5)])

    assert [list(output) for output in outputs] == [[f"Echo: q{i}"] for i in range(5)]
    jobs = reversed(CASES["openai"].jobs(fake_server))  # newest first
    assert [[r.key_text for r in job.requests] for job in jobs] == [
        ["q0", "q1"],
        ["q2", "q3"],
        ["q4"],
    ]


def test_a_request_that_fails_inside_the_job_costs_only_its_row(
    fake_server: FakeServer, case: Case
) -> None:
    llm = case.llm(fake_server)
    outputs = llm.generate_outputs([chat("q0"), chat("q1 [[status=500]]"), chat("q2")])

    assert outputs[0] == ["Echo: q0"] and outputs[2] == ["Echo: q2"]
    assert outputs[1] == [None]
    assert "Simulated error 500" in outputs[1].errors[0]
    assert llm.usage.failed_requests == 1 and llm.usage.requests == 2


def test_an_expired_job_keeps_what_it_answered_and_says_why_the_rest_is_none(
    fake_server: FakeServer, case: Case, caplog: pytest.LogCaptureFixture
) -> None:
    questions = ["q0", "q1", "q2 [[batch_expire]]", "q3"]
    with caplog.at_level(logging.WARNING, logger="potstill"):
        outputs = case.llm(fake_server).generate_outputs([chat(q) for q in questions])

    assert [list(output) for output in outputs[:2]] == [["Echo: q0"], ["Echo: q1"]]
    for output in outputs[2:]:
        assert output == [None]
        assert "expired" in output.errors[0]
    assert "2 of 4 request(s) have no answer" in caplog.text
    assert "use_offline_batch_generation=False" in caplog.text  # how to retry them online


def test_a_cancelled_job_is_reported_and_its_rows_are_none(
    fake_server: FakeServer, case: Case, caplog: pytest.LogCaptureFixture
) -> None:
    fake_server.configure(batch_polls=1000)  # it would run for 1000 checks
    cancelled = threading.Event()

    def cancel_once_it_runs() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            jobs = case.jobs(fake_server)
            if jobs and jobs[0].polls >= 2:
                with fake_server.state.batches.locked():
                    jobs[0].cancel()
                cancelled.set()
                return
            time.sleep(0.005)

    canceller = threading.Thread(target=cancel_once_it_runs)
    canceller.start()
    with caplog.at_level(logging.WARNING, logger="potstill"):
        outputs = case.llm(fake_server).generate_outputs([chat(f"q{i}") for i in range(3)])
    canceller.join()

    assert cancelled.is_set()
    assert [list(output) for output in outputs] == [[None]] * 3
    assert all("cancel" in output.errors[0] for output in outputs)
    assert "3 of 3 request(s) have no answer" in caplog.text


def test_a_job_that_cannot_be_submitted_fails_its_rows_with_the_reason(
    fake_server: FakeServer, case: Case
) -> None:
    llm = case.llm(fake_server, api_key="wrong-key")
    outputs = llm.generate_outputs([chat("q0"), chat("q1")])

    assert [list(output) for output in outputs] == [[None], [None]]
    assert outputs[0].errors[0].startswith("submitting the batch job failed: ")
    assert case.jobs(fake_server) == []


def test_the_generation_kwargs_are_checked_before_a_job_is_submitted(
    fake_server: FakeServer, case: Case
) -> None:
    llm = case.llm(fake_server)
    with pytest.raises(PotstillUserError, match="temperature"):
        llm.generate_outputs([chat("q0")], temperature="hot")
    assert fake_server.requests == []


def test_a_magpie_prompt_cannot_go_into_a_batch_job(fake_server: FakeServer) -> None:
    llm = CASES["openai"].llm(
        fake_server, use_magpie_template=True, magpie_pre_query_template="qwen2"
    )
    with pytest.raises(PotstillUserError, match="use_offline_batch_generation=False"):
        llm.generate_outputs([[{"role": "system", "content": "You write questions."}]])
    assert fake_server.requests == []


# -- request building and answer parsing (no server) ---------------------------------------


def test_request_kwargs_are_the_kwargs_agenerate_receives() -> None:
    llm = OpenAILLM(model="m", api_key="k")
    kwargs = request_kwargs(llm, {"temperature": "0.5"})
    assert kwargs["temperature"] == 0.5 and kwargs["max_new_tokens"] == 128
    assert kwargs["logprobs"] is False and kwargs["stop"] is None


def test_an_anthropic_job_request_has_the_sampling_fields_inline() -> None:
    llm = AnthropicLLM(model="claude-test", api_key="k")
    kwargs = request_kwargs(llm, {"temperature": 0.2, "top_k": 5})
    item = AnthropicBatchJobs(llm).encode(JobRequest("id-1", chat(SPAIN, "Be brief."), 1), kwargs)
    assert item == {
        "custom_id": "id-1",
        "params": {
            "model": "claude-test",
            "messages": [{"role": "user", "content": SPAIN}],
            "system": "Be brief.",
            "max_tokens": 128,
            "temperature": 0.2,
            "top_k": 5,
        },
    }


def test_parse_batch_line_reads_answers_and_errors() -> None:
    answer = {
        "custom_id": "a",
        "response": {
            "status_code": 200,
            "body": {
                "choices": [{"index": 0, "message": {"content": "Hi"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1},
            },
        },
        "error": None,
    }
    refused = {
        "custom_id": "b",
        "response": {"status_code": 429, "body": {"error": {"message": "Slow down"}}},
        "error": None,
    }
    expired = {
        "custom_id": "c",
        "response": None,
        "error": {"code": "batch_expired", "message": "Not run in time."},
    }
    parsed = parse_batch_line(answer)
    assert parsed == ["Hi"] and parsed.input_tokens == [3]
    assert parse_batch_line(refused).errors == ["HTTP 429: Slow down"]
    assert parse_batch_line(expired).errors == ["batch_expired: Not run in time."]


def test_batch_problem_names_what_ended_the_job() -> None:
    @dataclass
    class Error:
        line: int
        message: str

    @dataclass
    class Errors:
        data: list[Error]

    failed = batch_problem("batch_1", "failed", Errors([Error(2, "Bad JSON.")]))
    assert failed == "batch job batch_1 failed: line 2: Bad JSON."
    assert "expired" in str(batch_problem("batch_1", "expired", None))
    assert "cancelled" in str(batch_problem("batch_1", "cancelled", None))
    assert batch_problem("batch_1", "completed", None) is None


@pytest.mark.parametrize(
    ("result", "error"),
    [
        (
            {
                "type": "errored",
                "error": {
                    "type": "error",
                    "error": {"type": "overloaded_error", "message": "Overloaded"},
                },
            },
            "overloaded_error: Overloaded",
        ),
        ({"type": "expired"}, "expired: the batch job expired"),
        ({"type": "canceled"}, "canceled: the batch job was cancelled"),
    ],
)
def test_parse_batch_result_says_why_a_request_has_no_answer(
    result: dict[str, Any], error: str
) -> None:
    item = MessageBatchIndividualResponse.model_validate({"custom_id": "x", "result": result})
    parsed = parse_batch_result(item.result)
    assert parsed == [None] and parsed.errors[0].startswith(error)
