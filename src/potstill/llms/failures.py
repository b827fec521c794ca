"""What a failed request leaves behind: `None` generations with the error kept beside them,
one log line (not thousands), and a count in the LLM's usage.

A failure never raises out of `generate_outputs`: the generations of the input that failed
are `None`, each with its error in `Generations.errors` (tasks copy it into
`potstill_metadata`), and every other input of the batch keeps its answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from potstill.llms.retry import classify
from potstill.llms.typing import Generations
from potstill.utils.secrets import redact

if TYPE_CHECKING:
    from potstill.llms.base import LLM

_MAX_ERROR_CHARS = 500
# The same error on thousands of rows would drown the log: the first few are logged, then
# every hundredth with its count.
_LOGGED_REPEATS = 3


def describe_error(error: BaseException) -> str:
    """A one-line description of an exception for logs and metadata, with every known
    secret value hidden (a server may echo the key it was sent).

    Args:
        error: the exception.

    Returns:
        `"<ExceptionClass>: <message>"`, at most 500 characters.
    """
    text = redact(f"{type(error).__name__}: {error}".strip())
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 3] + "..."


def record_failure(
    llm: LLM, num_generations: int, error: BaseException, row: int, note: str = ""
) -> Generations:
    """Gives up on a request: counts it, logs it (see `_LOGGED_REPEATS`) and returns its
    failed generations.

    A refused connection or a timeout names the endpoint (`llm.describe_endpoint()`), so a
    wrong URL or an unreachable server is obvious from the message.

    Args:
        llm: the LLM whose request failed.
        num_generations: how many generations the request stood for.
        error: what the request raised last.
        row: the input's row in the dataset, for the log.
        note: why it was not retried, when that is not obvious from the error.

    Returns:
        `num_generations` `None` generations, each with the error.
    """
    message = describe_error(error) + (f" ({note})" if note else "")
    decision = classify(error)
    endpoint = llm.describe_endpoint()
    if decision.refused:
        # SDKs word this as "Connection error" or even "Request timed out": say what it is.
        where = f" (endpoint: {endpoint})" if endpoint else ""
        message = (
            f"ConnectionRefusedError: connection refused{where}: nothing accepts "
            "connections there; check the URL and that the server is running."
        )
    elif decision.retry and decision.status is None and endpoint:
        message = f"{message} (endpoint: {endpoint})"  # a timeout or connection error
    seen = llm._usage.record_failure(message)
    if seen <= _LOGGED_REPEATS:
        llm.logger.warning("Generation for row %d failed: %s", row, message)
    elif seen % 100 == 0:
        llm.logger.warning(
            "Generation for row %d failed: %s (%d rows so far with this error)",
            row,
            message,
            seen,
        )
    return Generations.failed(num_generations, message)


def fit_to_count(llm: LLM, generations: Generations, expected: int, row: int) -> Generations:
    """The generations of one input cut or padded to the `expected` count: choices the
    provider added beyond it are dropped, missing ones fail (and are logged).

    Args:
        llm: the LLM that answered.
        generations: what it answered for the input.
        expected: how many generations were asked for.
        row: the input's row in the dataset, for the log.

    Returns:
        Exactly `expected` generations.
    """
    if len(generations) < expected:
        missing = f"the provider returned {len(generations)} of {expected} generations"
        llm.logger.warning("Row %d: %s.", row, missing)
        return generations.resized(expected, missing)
    return generations.resized(expected, "")


def all_failed(generations: Generations) -> bool:
    """Whether every generation of an input is `None` with an error recorded."""
    return bool(generations) and all(
        text is None and error is not None for text, error in zip(generations, generations.errors)
    )
