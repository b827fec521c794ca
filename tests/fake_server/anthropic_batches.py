"""Anthropic's Message Batches API: many Messages requests run as one job.

* ``POST /v1/messages/batches`` (``requests``: ``custom_id`` + ``params``)
* ``GET /v1/messages/batches`` (``after_id``, ``before_id``, ``limit``)
* ``GET /v1/messages/batches/{id}``, ``POST /v1/messages/batches/{id}/cancel``,
  ``DELETE /v1/messages/batches/{id}`` (only once ended)
* ``GET /v1/messages/batches/{id}/results``: JSONL lines ``{"custom_id", "result":
  {"type": "succeeded", "message"} | {"type": "errored", "error"} | {"type": "canceled"} |
  {"type": "expired"}}``, once the batch has ended (its ``results_url``)

The request shape (ids, ``params`` objects) is checked when the batch is created; each
``params`` is validated like ``POST /v1/messages`` only when the job runs it, an invalid
one ending ``errored``, as the real API does. ``processing_status`` is ``in_progress``
until the job ends (``canceling`` between a cancel and the next look), then ``ended``;
``request_counts`` stays at ``processing`` until then. Progress and markers: see
:mod:`tests.fake_server.batch_jobs`. Cancelling a batch that has ended changes nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from .anthropic_messages import PROVIDER, build_message, error_body, key_text, validate
from .batch_jobs import (
    COMPLETION_WINDOW_S,
    BatchJob,
    BatchRequest,
    ItemResult,
    Refusal,
    cursor_page,
    decide_request,
    new_id,
)
from .common import BadRequest
from .context import get_context
from .registry import Handler
from .state import ServerState

CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MAX_REQUESTS = 100_000
MAX_LIMIT = 1000


def _error(status: int, message: str) -> web.Response:
    """An Anthropic error response.

    Args:
        status: HTTP status.
        message: Human-readable message.

    Returns:
        The JSON response.
    """
    return web.json_response(error_body(status, message), status=status)


def _rfc3339(timestamp: float | None) -> str | None:
    """Format a Unix time as the API does.

    Args:
        timestamp: Seconds since the epoch, or None.

    Returns:
        ``2024-08-20T18:37:24.100435Z``, or None.
    """
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    return moment.isoformat().replace("+00:00", "Z")


def read_requests(body: Any) -> list[BatchRequest]:
    """Check the shape of a create body and read its requests.

    Args:
        body: The parsed JSON body.

    Returns:
        The requests, in order.

    Raises:
        BadRequest: On a body the real API rejects at creation.
    """
    if not isinstance(body, Mapping) or not isinstance(body.get("requests"), list):
        raise BadRequest("requests: Field required (a list of {custom_id, params})")
    items = body["requests"]
    if not 1 <= len(items) <= MAX_REQUESTS:
        raise BadRequest(f"requests: a batch holds 1 to {MAX_REQUESTS} requests")
    requests: list[BatchRequest] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise BadRequest(f"requests.{index}: Input should be an object")
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not CUSTOM_ID.match(custom_id):
            raise BadRequest(
                f"requests.{index}.custom_id: 1 to 64 letters, digits, '_' or '-' "
                f"(got {custom_id!r})"
            )
        if custom_id in seen:
            raise BadRequest(
                f"requests.{index}.custom_id: {custom_id!r} is used by an earlier request; "
                "each request of a batch needs its own custom_id"
            )
        if not isinstance(item.get("params"), Mapping):
            raise BadRequest(f"requests.{index}.params: Field required")
        seen.add(custom_id)
        requests.append(BatchRequest(custom_id, item["params"], key_text(item["params"])))
    return requests


def batch_object(job: BatchJob, origin: str) -> dict[str, Any]:
    """The ``message_batch`` object of a job.

    Args:
        job: The job.
        origin: The server's base URL, for ``results_url``.

    Returns:
        The JSON object.
    """
    counts = job.counts()
    if job.ended:
        status = "ended"
    else:
        status = "in_progress" if job.cancelled_at is None else "canceling"
    return {
        "id": job.id,
        "type": "message_batch",
        "processing_status": status,
        "request_counts": {
            "processing": 0 if job.ended else len(job.requests),
            "succeeded": counts["succeeded"] if job.ended else 0,
            "errored": counts["errored"] if job.ended else 0,
            "canceled": counts["canceled"],
            "expired": counts["expired"],
        },
        "created_at": _rfc3339(job.created_at),
        "expires_at": _rfc3339(job.created_at + COMPLETION_WINDOW_S),
        "ended_at": _rfc3339(job.ended_at),
        "cancel_initiated_at": _rfc3339(job.cancelled_at),
        "archived_at": None,
        "results_url": f"{origin}/v1/messages/batches/{job.id}/results" if job.ended else None,
    }


def result_line(request: BatchRequest, result: ItemResult) -> dict[str, Any]:
    """The results line of one request.

    Args:
        request: The request.
        result: What became of it.

    Returns:
        ``{"custom_id", "result"}``.
    """
    outcome: dict[str, Any] = {"type": result.outcome}
    if result.outcome == "succeeded":
        outcome["message"] = result.body
    elif result.outcome == "errored":
        outcome["error"] = {**result.body, "request_id": new_id("req_")}
    return {"custom_id": request.custom_id, "result": outcome}


def _answerer(server: ServerState) -> Callable[[BatchRequest], ItemResult]:
    """The function that answers one request of a job like an online Messages request.

    Args:
        server: The server state (attempt counters, configuration).

    Returns:
        ``answer(request) -> ItemResult``.
    """

    def answer(request: BatchRequest) -> ItemResult:
        decision = decide_request(request.key_text, server.next_attempt(request.key_text))
        if isinstance(decision, Refusal):
            return ItemResult(
                "errored", decision.status, error_body(decision.status, decision.message)
            )
        try:
            params = validate(request.body)
        except BadRequest as exc:
            return ItemResult("errored", 400, error_body(400, str(exc)))
        message = build_message(params, decision.empty, server.config.max_tokens_truncates)
        return ItemResult("succeeded", 200, message)

    return answer


def _list_params(request: web.Request) -> tuple[int, str | None, str | None]:
    """Read the paging parameters of a list request.

    Args:
        request: The request.

    Returns:
        The limit, ``after_id`` and ``before_id``.

    Raises:
        web.HTTPBadRequest: If the limit is not an integer in [1, 1000].
    """
    raw = request.query.get("limit", "20")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise web.HTTPBadRequest(
            text=json.dumps(error_body(400, f"limit: an integer in [1, {MAX_LIMIT}]")),
            content_type="application/json",
        )
    return int(raw), request.query.get("after_id"), request.query.get("before_id")


def _routes(server: ServerState) -> dict[tuple[str, str], Handler]:
    """The Message Batches API's handlers.

    Args:
        server: The server state holding the jobs.

    Returns:
        (method, path) -> handler.
    """
    store = server.batches
    answer = _answerer(server)

    def look(request: web.Request, job: BatchJob, poll: bool) -> dict[str, Any]:
        with store.locked():
            job.polls += int(poll)
            job.advance(answer)
            return batch_object(job, str(request.url.origin()))

    def found(request: web.Request) -> BatchJob:
        batch_id = request.match_info["batch_id"]
        job = store.job(batch_id, PROVIDER)
        if job is None:
            raise web.HTTPNotFound(
                text=json.dumps(error_body(404, f"No message batch with id '{batch_id}'.")),
                content_type="application/json",
            )
        return job

    async def create(request: web.Request) -> web.Response:
        try:
            requests = read_requests(get_context(request).body)
        except BadRequest as exc:
            return _error(400, str(exc))
        config = server.config
        job = BatchJob(
            id=new_id("msgbatch_"),
            provider=PROVIDER,
            requests=requests,
            polls_needed=config.batch_polls,
            delay_s=config.batch_delay_s,
            seed=config.seed,
        )
        store.add_job(job)
        with store.locked():
            return web.json_response(batch_object(job, str(request.url.origin())))

    async def retrieve(request: web.Request) -> web.Response:
        return web.json_response(look(request, found(request), poll=True))

    async def cancel(request: web.Request) -> web.Response:
        job = found(request)
        with store.locked():
            job.advance(answer)
            job.cancel()
            return web.json_response(batch_object(job, str(request.url.origin())))

    async def delete(request: web.Request) -> web.Response:
        job = found(request)
        with store.locked():
            job.advance(answer)
            if not job.ended:
                return _error(
                    400,
                    f"Message batch {job.id} is still processing; cancel it, then delete it "
                    "once it has ended.",
                )
            store.delete_job(job.id)
        return web.json_response({"id": job.id, "type": "message_batch_deleted"})

    async def results(request: web.Request) -> web.Response:
        job = found(request)
        with store.locked():
            job.advance(answer)
            if not job.ended:
                return _error(404, f"Message batch {job.id} has no results until it has ended.")
            lines = [result_line(req, res) for req, res in job.finished_results()]
        body = "".join(json.dumps(line) + "\n" for line in lines)
        return web.Response(text=body, content_type="application/x-jsonl")

    async def listing(request: web.Request) -> web.Response:
        limit, after, before = _list_params(request)
        jobs, more = cursor_page(
            store.jobs(PROVIDER), lambda j: j.id, limit, after=after, before=before
        )
        data = [look(request, job, poll=False) for job in jobs]
        return web.json_response(
            {
                "data": data,
                "has_more": more,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        )

    return {
        ("POST", "/v1/messages/batches"): create,
        ("GET", "/v1/messages/batches"): listing,
        ("GET", "/v1/messages/batches/{batch_id}"): retrieve,
        ("DELETE", "/v1/messages/batches/{batch_id}"): delete,
        ("POST", "/v1/messages/batches/{batch_id}/cancel"): cancel,
        ("GET", "/v1/messages/batches/{batch_id}/results"): results,
    }


def register(router: web.UrlDispatcher, server: ServerState) -> None:
    """Add the Message Batches routes to the ``anthropic`` provider (registered by
    :mod:`tests.fake_server.anthropic_messages`, which must come first).

    Args:
        router: The application's router.
        server: The server state.
    """
    for (method, path), handler in _routes(server).items():
        server.providers.add_route(router, method, path, handler, PROVIDER)
