"""The fake server's batch APIs, driven through the real SDKs: OpenAI's Files + Batches and
Anthropic's Message Batches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from tests.fake_server import FakeServer

REPO_ROOT = Path(__file__).resolve().parents[2]
SPAIN = "What's the capital of Spain?"
FRANCE = "What's the capital of France?"
MADRID = "The capital of Spain is Madrid."
PARIS = "The capital of France is Paris."


@pytest.fixture
def oai(fake_server: FakeServer) -> Iterator[openai.OpenAI]:
    """A sync OpenAI client without retries."""
    with openai.OpenAI(
        base_url=fake_server.openai_base_url, api_key="test-key", max_retries=0
    ) as client:
        yield client


def anthropic_client(url: str) -> anthropic.Anthropic:
    """An Anthropic client that sends its key in `x-api-key`, as potstill's AnthropicLLM."""
    return anthropic.Anthropic(
        base_url=url,
        api_key="test-key",
        max_retries=0,
        default_headers={"x-api-key": "test-key", "Authorization": anthropic.omit},
    )


@pytest.fixture
def claude(fake_server: FakeServer) -> Iterator[anthropic.Anthropic]:
    """A sync Anthropic client without retries."""
    with anthropic_client(fake_server.url) as client:
        yield client


# -- OpenAI ---------------------------------------------------------------------------


def chat_line(custom_id: str, text: str, **body: Any) -> dict[str, Any]:
    """One line of a batch input file."""
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **body},
    }


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def submit(client: openai.OpenAI, lines: list[dict[str, Any]]) -> Any:
    """Upload the lines and create a batch of them."""
    uploaded = client.files.create(file=("requests.jsonl", jsonl(lines)), purpose="batch")
    return client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )


def read_lines(client: openai.OpenAI, file_id: str | None) -> dict[str, dict[str, Any]]:
    """Download an output or error file, by custom_id."""
    if file_id is None:
        return {}
    text = client.files.content(file_id).text
    lines = [json.loads(line) for line in text.splitlines()]
    return {line["custom_id"]: line for line in lines}


def answer_text(line: dict[str, Any]) -> str:
    return line["response"]["body"]["choices"][0]["message"]["content"]


def test_file_upload_retrieve_content_list_delete(oai: openai.OpenAI) -> None:
    data = jsonl([chat_line("a", SPAIN)])
    uploaded = oai.files.create(file=("in.jsonl", data), purpose="batch")

    assert uploaded.id.startswith("file-")
    assert (uploaded.filename, uploaded.purpose, uploaded.bytes) == ("in.jsonl", "batch", len(data))
    assert oai.files.retrieve(uploaded.id) == uploaded
    assert oai.files.content(uploaded.id).read() == data
    assert [f.id for f in oai.files.list(purpose="batch")] == [uploaded.id]
    assert oai.files.delete(uploaded.id).deleted is True
    with pytest.raises(openai.NotFoundError, match="No such File"):
        oai.files.retrieve(uploaded.id)


@pytest.mark.parametrize(
    ("file", "purpose", "message"),
    [
        (("in.txt", b"{}"), "batch", "Must be .jsonl"),
        (("in.jsonl", b"{}"), "training", "purpose"),
    ],
)
def test_file_upload_refuses_what_the_real_api_refuses(
    oai: openai.OpenAI, file: Any, purpose: str, message: str
) -> None:
    with pytest.raises(openai.BadRequestError, match=message):
        oai.files.create(file=file, purpose=purpose)  # type: ignore[arg-type]


def test_batch_goes_through_its_statuses_and_answers_like_online_requests(
    fake_server: FakeServer, oai: openai.OpenAI
) -> None:
    fake_server.configure(batch_polls=3)
    created = submit(oai, [chat_line("spain", SPAIN), chat_line("france", FRANCE, n=2)])
    assert created.status == "validating"

    statuses = [oai.batches.retrieve(created.id).status for _ in range(3)]
    assert statuses == ["in_progress", "finalizing", "completed"]

    done = oai.batches.retrieve(created.id)
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed) == (2, 2)
    assert done.error_file_id is None
    assert done.completed_at is not None and done.model == "gpt-4o-mini"
    output = read_lines(oai, done.output_file_id)
    assert answer_text(output["spain"]) == MADRID
    online = oai.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": FRANCE}], n=2
    )
    batched = output["france"]["response"]["body"]
    assert [c["message"]["content"] for c in batched["choices"]] == [
        c.message.content for c in online.choices
    ]
    assert output["france"]["response"]["status_code"] == 200
    assert output["france"]["error"] is None
    assert done.usage is not None
    usage = [line["response"]["body"]["usage"] for line in output.values()]
    assert done.usage.input_tokens == sum(u["prompt_tokens"] for u in usage)
    assert done.usage.output_tokens == sum(u["completion_tokens"] for u in usage)


def test_results_are_not_in_input_order(oai: openai.OpenAI) -> None:
    ids = [f"r{i}" for i in range(8)]
    batch = submit(oai, [chat_line(custom_id, f"q {custom_id}") for custom_id in ids])
    done = oai.batches.retrieve(batch.id)

    text = oai.files.content(done.output_file_id).text  # type: ignore[arg-type]
    returned = [json.loads(line)["custom_id"] for line in text.splitlines()]
    assert sorted(returned) == ids
    assert returned != ids


def test_markers_fail_single_requests_inside_the_job(oai: openai.OpenAI) -> None:
    lines = [
        chat_line("ok", SPAIN),
        chat_line("boom", "Hi [[status=500]]"),
        chat_line("limited", "Hi [[status=429]]"),
        chat_line("dropped", "Hi [[drop]]"),
        chat_line("invalid", SPAIN, temperature=5),
    ]
    done = oai.batches.retrieve(submit(oai, lines).id)

    assert done.status == "completed"
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (1, 4)
    assert set(read_lines(oai, done.output_file_id)) == {"ok"}
    errors = read_lines(oai, done.error_file_id)
    statuses = {cid: line["response"]["status_code"] for cid, line in errors.items()}
    assert statuses == {"boom": 500, "limited": 429, "dropped": 500, "invalid": 400}
    assert errors["invalid"]["response"]["body"]["error"]["param"] == "temperature"
    assert all(line["error"] is None for line in errors.values())


def test_fail_first_fails_the_first_job_and_passes_a_resubmission(oai: openai.OpenAI) -> None:
    line = chat_line("flaky", "Flaky question [[fail_first=1 status=503]]")

    first = oai.batches.retrieve(submit(oai, [line]).id)
    second = oai.batches.retrieve(submit(oai, [line]).id)

    assert read_lines(oai, first.error_file_id)["flaky"]["response"]["status_code"] == 503
    assert answer_text(read_lines(oai, second.output_file_id)["flaky"]) == "Echo: Flaky question"


def test_expire_marker_expires_the_job_from_that_request_on(oai: openai.OpenAI) -> None:
    lines = [
        chat_line("a", SPAIN),
        chat_line("b", FRANCE),
        chat_line("c", "late [[batch_expire]]"),
        chat_line("d", SPAIN + " again"),
    ]
    done = oai.batches.retrieve(submit(oai, lines).id)

    assert done.status == "expired" and done.expired_at is not None
    assert set(read_lines(oai, done.output_file_id)) == {"a", "b"}
    errors = read_lines(oai, done.error_file_id)
    assert set(errors) == {"c", "d"}
    assert {line["error"]["code"] for line in errors.values()} == {"batch_expired"}
    assert all(line["response"] is None for line in errors.values())


def test_cancel_keeps_what_ran_and_cancels_the_rest(
    fake_server: FakeServer, oai: openai.OpenAI
) -> None:
    fake_server.configure(batch_polls=4)
    batch = submit(oai, [chat_line(f"r{i}", f"question {i}") for i in range(4)])
    assert oai.batches.retrieve(batch.id).request_counts.completed == 1  # type: ignore[union-attr]

    cancelling = oai.batches.cancel(batch.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at is not None
    done = oai.batches.retrieve(batch.id)

    assert done.status == "cancelled" and done.cancelled_at is not None
    assert set(read_lines(oai, done.output_file_id)) == {"r0"}
    errors = read_lines(oai, done.error_file_id)
    assert set(errors) == {"r1", "r2", "r3"}
    assert {line["error"]["code"] for line in errors.values()} == {"batch_cancelled"}
    with pytest.raises(openai.ConflictError, match="status 'cancelled'"):
        oai.batches.cancel(batch.id)


def test_invalid_input_file_fails_the_job_after_validating(oai: openai.OpenAI) -> None:
    wrong_url = {**chat_line("c", SPAIN), "url": "/v1/completions"}
    data = jsonl([chat_line("a", SPAIN), chat_line("a", FRANCE)]) + b"not json\n"
    data += jsonl([wrong_url])
    uploaded = oai.files.create(file=("in.jsonl", data), purpose="batch")
    created = oai.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )

    assert created.status == "validating"
    failed = oai.batches.retrieve(created.id)
    assert failed.status == "failed" and failed.failed_at is not None
    assert failed.errors is not None and failed.errors.data is not None
    found = [(e.code, e.line) for e in failed.errors.data]
    assert found == [
        ("duplicate_custom_id", 2),
        ("invalid_json_line", 3),
        ("mismatched_endpoint", 4),
    ]
    assert failed.output_file_id is None and failed.error_file_id is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"input_file_id": "file-nope"}, "no such file"),
        ({"endpoint": "/v1/embeddings"}, "only runs /v1/chat/completions"),
        ({"completion_window": "1h"}, "completion_window"),
    ],
)
def test_create_refuses_bad_arguments(
    oai: openai.OpenAI, changes: dict[str, str], message: str
) -> None:
    uploaded = oai.files.create(file=("in.jsonl", jsonl([chat_line("a", SPAIN)])), purpose="batch")
    arguments = {
        "input_file_id": uploaded.id,
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
        **changes,
    }
    with pytest.raises(openai.BadRequestError, match=message):
        oai.batches.create(**arguments)  # type: ignore[arg-type]


def test_input_file_needs_the_batch_purpose(oai: openai.OpenAI) -> None:
    uploaded = oai.files.create(file=("in.jsonl", b"{}"), purpose="user_data")
    with pytest.raises(openai.BadRequestError, match="needs purpose 'batch'"):
        oai.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )


def test_batch_waits_for_its_delay(fake_server: FakeServer, oai: openai.OpenAI) -> None:
    fake_server.configure(batch_delay_s=0.4)
    batch = submit(oai, [chat_line("a", SPAIN)])

    assert oai.batches.retrieve(batch.id).status == "in_progress"
    time.sleep(0.5)
    assert oai.batches.retrieve(batch.id).status == "completed"


def test_batches_are_listed_newest_first_across_pages(oai: openai.OpenAI) -> None:
    created = [submit(oai, [chat_line("a", f"q{i}")]).id for i in range(3)]

    first_page = oai.batches.list(limit=2)
    assert [b.id for b in first_page.data] == created[::-1][:2]
    assert first_page.has_more is True
    assert [b.id for b in oai.batches.list(limit=2)] == created[::-1]  # auto-paging


def test_unknown_batch_wrong_key_and_reset(fake_server: FakeServer, oai: openai.OpenAI) -> None:
    batch = submit(oai, [chat_line("a", SPAIN)])
    with pytest.raises(openai.NotFoundError, match="No batch found"):
        oai.batches.retrieve("batch_nope")
    with openai.OpenAI(base_url=fake_server.openai_base_url, api_key="bad", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError):
            bad.batches.retrieve(batch.id)

    fake_server.reset()
    with pytest.raises(openai.NotFoundError):
        oai.batches.retrieve(batch.id)


# -- Anthropic ------------------------------------------------------------------------


def message_request(custom_id: str, text: str, **params: Any) -> dict[str, Any]:
    """One request of a message batch."""
    return {
        "custom_id": custom_id,
        "params": {
            "model": "claude-haiku-4-5",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": text}],
            **params,
        },
    }


def results_by_id(client: anthropic.Anthropic, batch_id: str) -> dict[str, Any]:
    return {line.custom_id: line.result for line in client.messages.batches.results(batch_id)}


def test_message_batch_ends_after_its_polls_with_every_kind_of_result(
    fake_server: FakeServer, claude: anthropic.Anthropic
) -> None:
    fake_server.configure(batch_polls=2)
    created = claude.messages.batches.create(
        requests=[
            message_request("spain", SPAIN),
            message_request("busy", "Hi [[status=529]]"),
            message_request("invalid", SPAIN, temperature=3),
        ]
    )
    assert created.processing_status == "in_progress" and created.results_url is None
    assert created.request_counts.processing == 3

    assert claude.messages.batches.retrieve(created.id).processing_status == "in_progress"
    ended = claude.messages.batches.retrieve(created.id)
    assert ended.processing_status == "ended" and ended.ended_at is not None
    counts = ended.request_counts
    assert (counts.processing, counts.succeeded, counts.errored) == (0, 1, 2)

    results = results_by_id(claude, created.id)
    assert results["spain"].type == "succeeded"
    online = claude.messages.create(**message_request("x", SPAIN)["params"])
    assert results["spain"].message.content[0].text == online.content[0].text == MADRID
    assert results["busy"].error.error.type == "overloaded_error"
    assert results["invalid"].error.error.type == "invalid_request_error"
    assert "temperature" in results["invalid"].error.error.message


def test_message_batch_cancel_and_expire(
    fake_server: FakeServer, claude: anthropic.Anthropic
) -> None:
    fake_server.configure(batch_polls=2)
    batch = claude.messages.batches.create(
        requests=[message_request(f"r{i}", f"question {i}") for i in range(4)]
    )
    claude.messages.batches.retrieve(batch.id)  # half way: r0 and r1 ran

    canceling = claude.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling"
    assert canceling.cancel_initiated_at is not None
    ended = claude.messages.batches.retrieve(batch.id)
    assert (ended.request_counts.succeeded, ended.request_counts.canceled) == (2, 2)
    kinds = {cid: result.type for cid, result in results_by_id(claude, batch.id).items()}
    assert kinds == {"r0": "succeeded", "r1": "succeeded", "r2": "canceled", "r3": "canceled"}

    fake_server.configure(batch_polls=0)
    expiring = claude.messages.batches.create(
        requests=[message_request("a", SPAIN), message_request("b", "late [[batch_expire]]")]
    )
    assert claude.messages.batches.retrieve(expiring.id).request_counts.expired == 1
    kinds = {cid: result.type for cid, result in results_by_id(claude, expiring.id).items()}
    assert kinds == {"a": "succeeded", "b": "expired"}


@pytest.mark.parametrize(
    ("requests", "message"),
    [
        ([message_request("same", SPAIN), message_request("same", FRANCE)], "used by an earlier"),
        ([message_request("has space", SPAIN)], "custom_id"),
        ([], "1 to 100000"),
    ],
)
def test_message_batch_create_checks_the_request_shape(
    claude: anthropic.Anthropic, requests: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(anthropic.BadRequestError, match=message):
        claude.messages.batches.create(requests=requests)  # type: ignore[arg-type]


def test_message_batch_results_only_once_ended(
    fake_server: FakeServer, claude: anthropic.Anthropic
) -> None:
    fake_server.configure(batch_polls=5)
    batch = claude.messages.batches.create(requests=[message_request("a", SPAIN)])
    request = urllib.request.Request(
        f"{fake_server.url}/v1/messages/batches/{batch.id}/results",
        headers={"x-api-key": "test-key"},
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=10)
    assert raised.value.code == 404
    with pytest.raises(anthropic.BadRequestError, match="still processing"):
        claude.messages.batches.delete(batch.id)


def test_message_batches_list_pages_and_delete(claude: anthropic.Anthropic) -> None:
    created = [
        claude.messages.batches.create(requests=[message_request("a", f"q{i}")]).id
        for i in range(3)
    ]

    page = claude.messages.batches.list(limit=2)
    assert [b.id for b in page.data] == created[::-1][:2] and page.has_more is True
    assert [b.id for b in claude.messages.batches.list(limit=1)] == created[::-1]
    assert claude.messages.batches.retrieve(created[0]).processing_status == "ended"
    assert claude.messages.batches.delete(created[0]).type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.batches.retrieve(created[0])


# -- jobs outlive their client ----------------------------------------------------------

CLIENT_SCRIPT = """
import json, sys, time
import anthropic, openai
url = sys.argv[1]
oai = openai.OpenAI(base_url=url + "/v1", api_key="test-key", max_retries=0)
line = {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
        "body": {"model": "m", "messages": [{"role": "user", "content": "What's the capital of Spain?"}]}}
uploaded = oai.files.create(file=("in.jsonl", (json.dumps(line) + "\\n").encode()), purpose="batch")
batch = oai.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                           completion_window="24h")
claude = anthropic.Anthropic(base_url=url, api_key="test-key", max_retries=0,
                             default_headers={"x-api-key": "test-key", "Authorization": anthropic.omit})
message_batch = claude.messages.batches.create(requests=[{"custom_id": "a", "params": {
    "model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hello"}]}}])
print(oai.batches.retrieve(batch.id).status, claude.messages.batches.retrieve(message_batch.id).processing_status)
print(batch.id, message_batch.id, flush=True)
time.sleep(60)
"""


def test_jobs_survive_a_killed_client(fake_server: FakeServer) -> None:
    fake_server.configure(batch_polls=3)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT_SCRIPT, fake_server.url],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert client.stdout is not None
        first_statuses = client.stdout.readline().split()
        batch_id, message_batch_id = client.stdout.readline().split()
    finally:
        client.kill()
        client.wait(timeout=10)
    assert first_statuses == ["in_progress", "in_progress"]

    with openai.OpenAI(base_url=fake_server.openai_base_url, api_key="test-key") as oai:
        statuses = [oai.batches.retrieve(batch_id).status for _ in range(2)]
        assert statuses == ["finalizing", "completed"]
        output = read_lines(oai, oai.batches.retrieve(batch_id).output_file_id)
        assert answer_text(output["a"]) == MADRID
    with anthropic_client(fake_server.url) as claude:
        for _ in range(2):
            ended = claude.messages.batches.retrieve(message_batch_id)
        assert ended.processing_status == "ended"
        assert results_by_id(claude, message_batch_id)["a"].type == "succeeded"


def test_batch_settings_are_checked(fake_server: FakeServer) -> None:
    with pytest.raises(ValueError, match="batch_polls must be >= 0"):
        fake_server.configure(batch_polls=-1)
    with pytest.raises(TypeError, match="batch_delay_s must be a number"):
        fake_server.configure(batch_delay_s="soon")
