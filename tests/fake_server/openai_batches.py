"""OpenAI's Files and Batches APIs: upload a JSONL file of chat requests, run it as a batch
job, download the output and error files.

* ``POST /v1/files`` (multipart: ``file``, ``purpose``), ``GET /v1/files``,
  ``GET /v1/files/{id}``, ``GET /v1/files/{id}/content``, ``DELETE /v1/files/{id}``
* ``POST /v1/batches`` (``input_file_id``, ``endpoint`` ``/v1/chat/completions``,
  ``completion_window`` ``24h``, ``metadata``), ``GET /v1/batches/{id}``,
  ``POST /v1/batches/{id}/cancel``, ``GET /v1/batches``

A job shows ``validating`` until its first retrieve, then ``in_progress``, ``finalizing``
on the last poll before its end (with ``batch_polls`` >= 2), then ``completed``,
``expired`` or ``cancelled`` (``cancelling`` between a cancel and the next look), or
``failed`` when its input file is invalid (bad JSON, duplicate ``custom_id``, a ``url``
that is not the batch's endpoint...). How it progresses, and the markers that make one
request fail or the job expire, are described in :mod:`tests.fake_server.batch_jobs`.
The output file holds the answered requests, ``{"id", "custom_id", "response":
{"status_code": 200, "request_id", "body": <chat.completion>}, "error": null}``; the error
file holds the failed ones (``response`` with the error status and body) and those never
run (``response`` null, ``error.code`` ``batch_expired`` or ``batch_cancelled``). A file is
only written when it has lines.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from email import policy
from email.parser import BytesParser
from typing import Any

from aiohttp import web

from .batch_jobs import (
    COMPLETION_WINDOW_S,
    BatchJob,
    BatchRequest,
    ItemResult,
    Refusal,
    StoredFile,
    cursor_page,
    decide_request,
    new_id,
)
from .common import chat_key_text
from .context import get_context
from .openai_chat import PROVIDER, build_completion, openai_error
from .openai_validation import InvalidRequest, validate_chat_request
from .registry import Handler
from .state import ServerState

ENDPOINT = "/v1/chat/completions"
# The endpoints the real API batches; the fake runs only chat completions.
KNOWN_ENDPOINTS = (
    "/v1/responses",
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/completions",
    "/v1/moderations",
)
FILE_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
MAX_METADATA_PAIRS = 16
NOT_RUN = {
    "expired": (
        "batch_expired",
        "This request could not be executed before the completion window expired.",
    ),
    "canceled": (
        "batch_cancelled",
        "This request was not executed because the batch was cancelled.",
    ),
}


def _error(status: int, message: str, param: str | None = None) -> web.Response:
    """An OpenAI error response.

    Args:
        status: HTTP status.
        message: Human-readable message.
        param: The offending parameter, if any.

    Returns:
        The JSON response.
    """
    return web.json_response(openai_error(status, message, param=param), status=status)


def _limit(request: web.Request, default: int, highest: int) -> int:
    """Read the ``limit`` query parameter of a list request.

    Args:
        request: The request.
        default: The limit when none is given.
        highest: The largest limit allowed.

    Returns:
        The limit.

    Raises:
        web.HTTPBadRequest: If it is not an integer in [1, highest].
    """
    raw = request.query.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= highest:
        raise web.HTTPBadRequest(
            text=json.dumps(
                openai_error(
                    400, f"Invalid 'limit': must be an integer in [1, {highest}].", "limit"
                )
            ),
            content_type="application/json",
        )
    return int(raw)


# -- files ---------------------------------------------------------------------------


def parse_multipart(content_type: str, raw: bytes) -> dict[str, tuple[str | None, bytes]]:
    """Split a ``multipart/form-data`` body into its fields.

    Args:
        content_type: The request's ``Content-Type`` header (with its boundary).
        raw: The body.

    Returns:
        Field name -> (file name or None, content).
    """
    message = BytesParser(policy=policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw
    )
    fields: dict[str, tuple[str | None, bytes]] = {}
    if not message.is_multipart():
        return fields
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str):
            fields[name] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return fields


def file_object(stored: StoredFile) -> dict[str, Any]:
    """The ``file`` object of a stored file.

    Args:
        stored: The file.

    Returns:
        The JSON object.
    """
    return {
        "id": stored.id,
        "object": "file",
        "bytes": len(stored.data),
        "created_at": stored.created_at,
        "filename": stored.filename,
        "purpose": stored.purpose,
        "status": "processed",
        "expires_at": None,
        "status_details": None,
    }


def _upload_error(fields: Mapping[str, tuple[str | None, bytes]]) -> tuple[str, str] | None:
    """Check the fields of an upload like the real API.

    Args:
        fields: The multipart fields.

    Returns:
        (message, param) of the error, or None for a valid upload.
    """
    purpose = fields.get("purpose", (None, b""))[1].decode(errors="replace")
    if "purpose" not in fields:
        return "Missing required parameter: 'purpose'.", "purpose"
    if purpose not in FILE_PURPOSES:
        return f"Invalid value for 'purpose': {purpose!r}.", "purpose"
    filename, _ = fields.get("file", (None, b""))
    if "file" not in fields or filename is None:
        return "Missing required parameter: 'file' (a file, not a plain field).", "file"
    if purpose == "batch" and not filename.endswith(".jsonl"):
        return f"Invalid file format for Batch API: {filename!r}. Must be .jsonl", "file"
    return None


def file_routes(server: ServerState, prefix: str = "/v1") -> dict[tuple[str, str], Handler]:
    """The Files API's handlers.

    Args:
        server: The server state holding the files.
        prefix: Where the routes live (``/v1``; Azure OpenAI: ``/openai``).

    Returns:
        (method, path) -> handler.
    """
    store = server.batches

    async def upload(request: web.Request) -> web.Response:
        fields = parse_multipart(request.headers.get("Content-Type", ""), await request.read())
        problem = _upload_error(fields)
        if problem is not None:
            return _error(400, *problem)
        filename, data = fields["file"]
        stored = StoredFile(
            id=new_id("file-"),
            filename=filename or "upload",
            purpose=fields["purpose"][1].decode(),
            data=data,
            created_at=int(time.time()),
        )
        store.add_file(stored)
        return web.json_response(file_object(stored))

    def found(request: web.Request) -> StoredFile:
        file_id = request.match_info["file_id"]
        stored = store.file(file_id)
        if stored is None:
            raise web.HTTPNotFound(
                text=json.dumps(openai_error(404, f"No such File object: {file_id}", "id")),
                content_type="application/json",
            )
        return stored

    async def retrieve(request: web.Request) -> web.Response:
        return web.json_response(file_object(found(request)))

    async def content(request: web.Request) -> web.Response:
        return web.Response(body=found(request).data, content_type="application/octet-stream")

    async def delete(request: web.Request) -> web.Response:
        stored = found(request)
        store.delete_file(stored.id)
        return web.json_response({"id": stored.id, "object": "file", "deleted": True})

    async def listing(request: web.Request) -> web.Response:
        purpose = request.query.get("purpose")
        files = [f for f in store.files() if purpose is None or f.purpose == purpose]
        if request.query.get("order") == "asc":
            files.reverse()
        page, more = cursor_page(
            files, lambda f: f.id, _limit(request, 10_000, 10_000), after=request.query.get("after")
        )
        return web.json_response(_list_body([file_object(f) for f in page], more))

    return {
        ("POST", f"{prefix}/files"): upload,
        ("GET", f"{prefix}/files"): listing,
        ("GET", f"{prefix}/files/{{file_id}}"): retrieve,
        ("GET", f"{prefix}/files/{{file_id}}/content"): content,
        ("DELETE", f"{prefix}/files/{{file_id}}"): delete,
    }


def _list_body(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    """An OpenAI list page.

    Args:
        data: The objects on the page.
        has_more: Whether more follow.

    Returns:
        ``{"object": "list", "data", "first_id", "last_id", "has_more"}``.
    """
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


# -- batches -------------------------------------------------------------------------


def _line_error(code: str, message: str, line: int, param: str | None = None) -> dict[str, Any]:
    """A validation error of one line of an input file.

    Args:
        code: Machine-readable code.
        message: Human-readable message.
        line: One-based line number.
        param: The offending field, if any.

    Returns:
        The ``BatchError`` object.
    """
    return {"code": code, "message": message, "param": param, "line": line}


def read_input(
    data: bytes, endpoint: str = ENDPOINT
) -> tuple[list[BatchRequest], list[dict[str, Any]]]:
    """Read the requests of an input file.

    Args:
        data: The JSONL content.
        endpoint: The batch's endpoint, which every line's ``url`` must name.

    Returns:
        The requests, and the validation errors (the job fails when there are any).
    """
    requests: list[BatchRequest] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    for number, line in enumerate(data.decode(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            item = None
        if not isinstance(item, dict):
            errors.append(
                _line_error(
                    "invalid_json_line", "This line is not parseable as a JSON object.", number
                )
            )
            continue
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            errors.append(
                _line_error(
                    "missing_required_parameter", "Missing 'custom_id'.", number, "custom_id"
                )
            )
        elif custom_id in seen:
            errors.append(
                _line_error(
                    "duplicate_custom_id",
                    f"The custom_id {custom_id!r} is used by an earlier request; each request "
                    "of a batch needs its own custom_id.",
                    number,
                    "custom_id",
                )
            )
        elif item.get("method") != "POST":
            errors.append(
                _line_error("invalid_method", "'method' must be 'POST'.", number, "method")
            )
        elif item.get("url") != endpoint:
            errors.append(
                _line_error(
                    "mismatched_endpoint",
                    f"The url {item.get('url')!r} does not match the batch's endpoint {endpoint!r}.",
                    number,
                    "url",
                )
            )
        elif not isinstance(item.get("body"), dict):
            errors.append(
                _line_error("missing_required_parameter", "Missing 'body'.", number, "body")
            )
        else:
            seen.add(custom_id)
            body = item["body"]
            requests.append(BatchRequest(custom_id, body, chat_key_text(body)))
    if not requests and not errors:
        errors.append(_line_error("empty_file", "The input file has no requests.", 1))
    return requests, errors


def _create_error(
    body: Any, store_file: StoredFile | None, endpoint: str = ENDPOINT
) -> tuple[str, str] | None:
    """Check a create-batch body like the real API.

    Args:
        body: The parsed JSON body.
        store_file: The input file it names, if it exists.
        endpoint: The chat completions endpoint as this API names it.

    Returns:
        (message, param) of the error, or None for a valid body.
    """
    if not isinstance(body, Mapping):
        return "The request body must be a JSON object.", "body"
    for name in ("input_file_id", "endpoint", "completion_window"):
        if not isinstance(body.get(name), str):
            return f"Missing required parameter: '{name}'.", name
    # Azure OpenAI names the endpoints without the /v1.
    known = KNOWN_ENDPOINTS if endpoint == ENDPOINT else [e[3:] for e in KNOWN_ENDPOINTS]
    if body["endpoint"] not in known:
        return f"Invalid value for 'endpoint': {body['endpoint']!r}.", "endpoint"
    if body["endpoint"] != endpoint:
        return f"The fake server only runs {endpoint} batches.", "endpoint"
    if body["completion_window"] != "24h":
        return (
            "Invalid value for 'completion_window': only '24h' is supported.",
            "completion_window",
        )
    metadata = body.get("metadata")
    if metadata is not None and (
        not isinstance(metadata, Mapping)
        or len(metadata) > MAX_METADATA_PAIRS
        or not all(isinstance(v, str) for v in metadata.values())
    ):
        return "Invalid 'metadata': up to 16 string values.", "metadata"
    if store_file is None:
        return f"Invalid 'input_file_id': no such file {body['input_file_id']!r}.", "input_file_id"
    if store_file.purpose != "batch":
        return (
            f"The file {store_file.id!r} was uploaded with purpose {store_file.purpose!r}; "
            "a batch input file needs purpose 'batch'.",
            "input_file_id",
        )
    return None


def _status(job: BatchJob) -> str:
    """The batch status a job shows.

    Args:
        job: The job.

    Returns:
        ``validating``, ``in_progress``, ``finalizing``, ``cancelling`` or its ending.
    """
    if job.ending is not None and (job.polls > 0 or job.ending != "failed"):
        return job.ending
    if job.cancelled_at is not None:
        return "cancelling"
    if job.polls == 0:
        return "validating"
    return "finalizing" if job.finalizing else "in_progress"


def _usage(job: BatchJob) -> dict[str, Any]:
    """Sum the token usage of the answered requests.

    Args:
        job: The job.

    Returns:
        The batch ``usage`` object.
    """
    succeeded = [r.body["usage"] for r in job.results if r is not None and r.outcome == "succeeded"]
    prompt = sum(u["prompt_tokens"] for u in succeeded)
    completion = sum(u["completion_tokens"] for u in succeeded)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


def batch_object(job: BatchJob) -> dict[str, Any]:
    """The ``batch`` object of a job.

    Args:
        job: The job.

    Returns:
        The JSON object.
    """
    status = _status(job)
    counts = job.counts()
    created = int(job.created_at)
    ended = None if job.ended_at is None else int(job.ended_at)
    running = status not in ("validating", "failed")
    model = job.requests[0].body.get("model") if job.requests else None
    return {
        "id": job.id,
        "object": "batch",
        "endpoint": job.details["endpoint"],
        "errors": {"object": "list", "data": job.errors} if job.errors else None,
        "input_file_id": job.details["input_file_id"],
        "completion_window": job.details["completion_window"],
        "status": status,
        "output_file_id": job.details.get("output_file_id"),
        "error_file_id": job.details.get("error_file_id"),
        "created_at": created,
        "in_progress_at": created if running else None,
        "expires_at": created + COMPLETION_WINDOW_S,
        "finalizing_at": ended if status == "completed" else None,
        "completed_at": ended if status == "completed" else None,
        "failed_at": ended if status == "failed" else None,
        "expired_at": ended if status == "expired" else None,
        "cancelling_at": None if job.cancelled_at is None else int(job.cancelled_at),
        "cancelled_at": ended if status == "cancelled" else None,
        "request_counts": {
            "total": len(job.requests),
            "completed": counts["succeeded"],
            "failed": sum(counts.values()) - counts["succeeded"],
        },
        "metadata": job.details.get("metadata"),
        "model": model if isinstance(model, str) else None,
        "usage": _usage(job),
    }


def result_line(request: BatchRequest, result: ItemResult) -> dict[str, Any]:
    """The output- or error-file line of one request.

    Args:
        request: The request.
        result: What became of it.

    Returns:
        ``{"id", "custom_id", "response", "error"}``.
    """
    line: dict[str, Any] = {"id": new_id("batch_req_"), "custom_id": request.custom_id}
    if result.outcome in NOT_RUN:
        code, message = NOT_RUN[result.outcome]
        return {**line, "response": None, "error": {"code": code, "message": message}}
    response = {"status_code": result.status, "request_id": new_id("req_"), "body": result.body}
    return {**line, "response": response, "error": None}


def _jsonl(lines: list[dict[str, Any]]) -> bytes:
    """Encode lines as JSONL.

    Args:
        lines: The JSON objects.

    Returns:
        One object per line, each ending with a newline.
    """
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def write_result_files(store_add: Callable[[StoredFile], None], job: BatchJob) -> None:
    """Write the output and error files of an ended job (once).

    Args:
        store_add: Stores a :class:`StoredFile` (``BatchStore.add_file``).
        job: The job.
    """
    if not job.ended or "files_written" in job.details:
        return
    job.details["files_written"] = True
    output: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for request, result in job.finished_results():
        (output if result.outcome == "succeeded" else failed).append(result_line(request, result))
    for kind, lines in (("output", output), ("error", failed)):
        if lines:
            stored = StoredFile(
                id=new_id("file-"),
                filename=f"{job.id}_{kind}.jsonl",
                purpose="batch_output",
                data=_jsonl(lines),
                created_at=int(time.time()),
            )
            store_add(stored)
            job.details[f"{kind}_file_id"] = stored.id


def _answerer(server: ServerState) -> Callable[[BatchRequest], ItemResult]:
    """The function that answers one request of a job like an online chat request.

    Args:
        server: The server state (attempt counters, configuration).

    Returns:
        ``answer(request) -> ItemResult``.
    """

    def answer(request: BatchRequest) -> ItemResult:
        decision = decide_request(request.key_text, server.next_attempt(request.key_text))
        if isinstance(decision, Refusal):
            return ItemResult(
                "errored", decision.status, openai_error(decision.status, decision.message)
            )
        try:
            valid = validate_chat_request(request.body)
        except InvalidRequest as exc:
            return ItemResult(
                "errored", 400, openai_error(400, exc.message, param=exc.param, code=exc.code)
            )
        body = build_completion(valid, decision.empty, server.config.max_tokens_truncates)
        return ItemResult("succeeded", 200, body)

    return answer


def batch_routes(
    server: ServerState, provider: str = PROVIDER, prefix: str = "/v1", endpoint: str = ENDPOINT
) -> dict[tuple[str, str], Handler]:
    """The Batches API's handlers.

    Args:
        server: The server state holding the jobs.
        provider: The provider owning the jobs (``openai``; ``azure``).
        prefix: Where the routes live (``/v1``; Azure OpenAI: ``/openai``).
        endpoint: The chat completions endpoint as the API names it (Azure OpenAI:
            ``/chat/completions``).

    Returns:
        (method, path) -> handler.
    """
    store = server.batches
    answer = _answerer(server)

    def look(job: BatchJob, poll: bool) -> dict[str, Any]:
        with store.locked():
            job.polls += int(poll)
            job.advance(answer)
            write_result_files(store.add_file, job)
            return batch_object(job)

    def found(request: web.Request) -> BatchJob:
        batch_id = request.match_info["batch_id"]
        job = store.job(batch_id, provider)
        if job is None:
            raise web.HTTPNotFound(
                text=json.dumps(openai_error(404, f"No batch found with id '{batch_id}'.")),
                content_type="application/json",
            )
        return job

    async def create(request: web.Request) -> web.Response:
        body = get_context(request).body
        input_id = body.get("input_file_id") if isinstance(body, Mapping) else None
        input_file = store.file(input_id) if isinstance(input_id, str) else None
        problem = _create_error(body, input_file, endpoint)
        if problem is not None:
            return _error(400, *problem)
        assert input_file is not None  # _create_error refuses a missing file
        requests, errors = read_input(input_file.data, endpoint)
        config = server.config
        job = BatchJob(
            id=new_id("batch_"),
            provider=provider,
            requests=requests,
            polls_needed=config.batch_polls,
            delay_s=config.batch_delay_s,
            seed=config.seed,
            details={
                "endpoint": body["endpoint"],
                "input_file_id": input_file.id,
                "completion_window": body["completion_window"],
                "metadata": body.get("metadata"),
            },
        )
        if errors:
            job.fail(errors)
        store.add_job(job)
        with store.locked():
            return web.json_response(batch_object(job))

    async def retrieve(request: web.Request) -> web.Response:
        return web.json_response(look(found(request), poll=True))

    async def cancel(request: web.Request) -> web.Response:
        job = found(request)
        with store.locked():
            job.advance(answer)
            if not job.cancel():
                write_result_files(store.add_file, job)
                status = batch_object(job)["status"]
                return _error(409, f"Cannot cancel a batch with status '{status}'.")
            return web.json_response(batch_object(job))

    async def listing(request: web.Request) -> web.Response:
        jobs, more = cursor_page(
            store.jobs(provider),
            lambda j: j.id,
            _limit(request, 20, 100),
            after=request.query.get("after"),
        )
        return web.json_response(_list_body([look(job, poll=False) for job in jobs], more))

    return {
        ("POST", f"{prefix}/batches"): create,
        ("GET", f"{prefix}/batches"): listing,
        ("GET", f"{prefix}/batches/{{batch_id}}"): retrieve,
        ("POST", f"{prefix}/batches/{{batch_id}}/cancel"): cancel,
    }


def register(router: web.UrlDispatcher, server: ServerState) -> None:
    """Add the Files and Batches routes to the ``openai`` provider (registered by
    :mod:`tests.fake_server.openai_chat`, which must come first).

    Args:
        router: The application's router.
        server: The server state.
    """
    routes = {**file_routes(server), **batch_routes(server)}
    for (method, path), handler in routes.items():
        server.providers.add_route(router, method, path, handler, PROVIDER)
