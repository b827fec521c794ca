"""How `potstill.llms.retry` classifies failures that SDKs wrap in their own exceptions."""

from __future__ import annotations

import errno

from potstill.llms.retry import classify, describe


class SDKError(Exception):
    """An SDK's exception without a status (a transport failure)."""


class StatusError(Exception):
    """An SDK's exception for an HTTP answer."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


def wrapped(inner: BaseException, outer: BaseException) -> BaseException:
    """`outer` raised from `inner`, as SDKs do (`raise APIConnectionError(...) from exc`)."""
    try:
        try:
            raise inner
        except BaseException as error:
            raise outer from error
    except BaseException as raised:
        return raised


def test_a_refusal_deep_in_the_cause_chain_is_found() -> None:
    refused = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 9)")
    error = wrapped(wrapped(refused, OSError("All connection attempts failed")), SDKError("x"))
    decision = classify(error)
    assert (decision.retry, decision.refused, decision.status) == (True, True, None)
    assert describe(error) == "connection refused"


def test_a_refusal_among_the_args_or_in_aiohttps_os_error_is_found() -> None:
    in_args = SDKError(OSError(errno.ECONNREFUSED, "refused"))
    in_attribute = SDKError("Cannot connect to host")
    in_attribute.os_error = ConnectionRefusedError(111, "refused")  # type: ignore[attr-defined]
    assert classify(in_args).refused and classify(in_attribute).refused


def test_a_refusal_flattened_into_the_message_is_found() -> None:
    assert classify(SDKError("failed to connect: Connection refused")).refused


def test_a_refusal_wrapped_in_a_made_up_status_is_still_a_refusal() -> None:
    # litellm raises an `InternalServerError` (500) for a connection it could not open.
    error = wrapped(ConnectionRefusedError(111, "refused"), StatusError("Connection error.", 500))
    assert classify(error).refused


def test_a_gateway_answer_that_mentions_a_refusal_is_an_http_error() -> None:
    # The gateway answered: its upstream refused, which may pass; the full retries apply.
    decision = classify(StatusError("upstream: connection refused", 502))
    assert (decision.retry, decision.refused, decision.status) == (True, False, 502)


def test_timeouts_and_other_connection_errors_are_not_refusals() -> None:
    for error in (TimeoutError("timed out"), ConnectionResetError(104, "reset")):
        decision = classify(wrapped(error, SDKError("Request timed out.")))
        assert decision.retry and not decision.refused
