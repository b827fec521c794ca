"""Types of what LLMs return.

`GenerateOutput` is distilabel's return type: one list per input, one entry per generation,
`None` where a generation failed. potstill's LLMs return `Generations`, a `list` subclass
that *is* a `GenerateOutput` and also carries what the provider reported beside the text
(token usage, per-generation errors, logprobs) without changing the return type.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, List, Optional, Union

if TYPE_CHECKING:
    from numpy import floating
    from numpy.typing import NDArray

    HiddenState = NDArray[floating[Any]]
else:
    HiddenState = Any

GenerateOutput = List[Union[str, None]]
"""The generations for one input: one entry per generation, `None` for a failed one."""


@dataclass(frozen=True)
class TokenUsage:
    """Tokens one request consumed, as the provider reported them.

    Attributes:
        input_tokens: tokens in the prompt, or `None` when not reported.
        output_tokens: tokens generated, or `None` when not reported.
    """

    input_tokens: Optional[int] = None
    output_tokens: Optional[int] = None


class Generations(list):
    """The generations for one input, plus what came with them.

    It is a plain `list[str | None]` for every purpose (equality, iteration, JSON), so code
    written against `GenerateOutput` keeps working.

    Attributes:
        input_tokens: per generation, the prompt tokens its request consumed. A request that
            produced several generations at once (native `n`) reports its usage on its first
            generation and `None` on the others, so sums stay exact.
        output_tokens: per generation, the tokens generated (same convention).
        errors: per generation, why it is `None` (the last error), or `None` when it is fine.
        logprobs: per generation, the provider's logprobs when requested, else `None`.
        raw_outputs: per generation, the text the model answered when it is not the
            generation (a structured output that failed validation is `None`, and its answer
            is kept here), else `None`.
    """

    __slots__ = ("errors", "input_tokens", "logprobs", "output_tokens", "raw_outputs")

    def __init__(
        self,
        texts: Iterable[Optional[str]] = (),
        *,
        input_tokens: Optional[Iterable[Optional[int]]] = None,
        output_tokens: Optional[Iterable[Optional[int]]] = None,
        errors: Optional[Iterable[Optional[str]]] = None,
        logprobs: Optional[Iterable[Any]] = None,
        raw_outputs: Optional[Iterable[Optional[str]]] = None,
    ) -> None:
        super().__init__(texts)
        self.input_tokens = _aligned(input_tokens, len(self))
        self.output_tokens = _aligned(output_tokens, len(self))
        self.errors = _aligned(errors, len(self))
        self.logprobs = _aligned(logprobs, len(self))
        self.raw_outputs = _aligned(raw_outputs, len(self))

    @classmethod
    def from_request(
        cls,
        texts: Iterable[Optional[str]],
        *,
        input_tokens: Optional[int] = None,
        output_tokens: Optional[int] = None,
        logprobs: Optional[Iterable[Any]] = None,
    ) -> Generations:
        """Builds the generations of one request that reported its usage once.

        Args:
            texts: the generated texts (several when the API returned `n` choices).
            input_tokens: the request's prompt tokens.
            output_tokens: the request's generated tokens, all choices together.
            logprobs: per choice, the logprobs when requested.

        Returns:
            The generations, with the request's usage on the first one.
        """
        texts = list(texts)
        count = len(texts)
        if not count:
            return cls(logprobs=logprobs)
        rest = [None] * (count - 1)
        return cls._from_lists(
            texts,
            [input_tokens, *rest],
            [output_tokens, *rest],
            [None] * count,
            _aligned(logprobs, count) if logprobs is not None else [None] * count,
        )

    @classmethod
    def _from_lists(
        cls,
        texts: list[Optional[str]],
        input_tokens: list[Optional[int]],
        output_tokens: list[Optional[int]],
        errors: list[Optional[str]],
        logprobs: list[Any],
    ) -> Generations:
        """Builds generations from lists already one entry per text (taken as they are: the
        per-request path builds one per answer, so it skips `__init__`'s checks)."""
        generations = list.__new__(cls)
        list.extend(generations, texts)
        generations.input_tokens = input_tokens
        generations.output_tokens = output_tokens
        generations.errors = errors
        generations.logprobs = logprobs
        generations.raw_outputs = [None] * len(texts)
        return generations

    @classmethod
    def failed(cls, count: int, error: str) -> Generations:
        """`count` failed generations that all share the same error."""
        return cls([None] * count, errors=[error] * count)

    @classmethod
    def coerce(cls, value: Any) -> Generations:
        """Accepts what an LLM returned for one input: `Generations`, a list, a str or None."""
        if isinstance(value, Generations):
            return value
        if value is None or isinstance(value, str):
            return cls([value])
        if isinstance(value, dict) and "generations" in value:
            statistics = value.get("statistics") or {}
            return cls(
                value["generations"],
                input_tokens=statistics.get("input_tokens"),
                output_tokens=statistics.get("output_tokens"),
                logprobs=value.get("logprobs"),
            )
        return cls(value)

    @classmethod
    def concat(cls, parts: Iterable[Generations]) -> Generations:
        """Joins the generations of several requests for the same input."""
        merged = cls()
        for part in parts:
            merged.extend(part)
            merged.input_tokens.extend(part.input_tokens)
            merged.output_tokens.extend(part.output_tokens)
            merged.errors.extend(part.errors)
            merged.logprobs.extend(part.logprobs)
            merged.raw_outputs.extend(part.raw_outputs)
        return merged

    def resized(self, count: int, missing: str) -> Generations:
        """Exactly `count` generations: the ones past `count` are dropped, missing ones are
        added as failed with `missing`. (A request that reported its usage once keeps it on
        its first generation, so dropping extra choices keeps the request's usage.)

        Args:
            count: how many generations were asked for.
            missing: the error of each added generation.

        Returns:
            These generations when they are already `count`, else a resized copy.
        """
        if len(self) == count:
            return self
        if len(self) < count:
            return Generations.concat([self, Generations.failed(count - len(self), missing)])
        return Generations(
            self[:count],
            input_tokens=self.input_tokens[:count],
            output_tokens=self.output_tokens[:count],
            errors=self.errors[:count],
            logprobs=self.logprobs[:count],
            raw_outputs=self.raw_outputs[:count],
        )

    @property
    def usage(self) -> TokenUsage:
        """The tokens of every request behind these generations, summed."""
        return TokenUsage(_sum(self.input_tokens), _sum(self.output_tokens))

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild,
            (
                list(self),
                self.input_tokens,
                self.output_tokens,
                self.errors,
                self.logprobs,
                self.raw_outputs,
            ),
        )


def _rebuild(
    texts: list,
    inputs: list,
    outputs: list,
    errors: list,
    logprobs: list,
    raw_outputs: Optional[list] = None,
) -> Generations:
    return Generations(
        texts,
        input_tokens=inputs,
        output_tokens=outputs,
        errors=errors,
        logprobs=logprobs,
        raw_outputs=raw_outputs,
    )


def _aligned(values: Optional[Iterable[Any]], length: int) -> list[Any]:
    if values is None:
        return [None] * length
    values = list(values)
    if len(values) < length:
        values.extend([None] * (length - len(values)))
    return values[:length]


def _sum(values: list[Optional[int]]) -> Optional[int]:
    reported = [value for value in values if value is not None]
    return sum(reported) if reported else None
