"""One batch of a synchronous `LLM` (`LLM.generate_outputs`).

Inputs answered before (in the pipeline step's journal or the response cache) are not sent
again; the others go to `generate` in one call. A call that fails as a whole is retried input
by input, so one bad input only costs its own generations. Each call holds the LLM's
`_model_lock`: local models are not thread-safe, and one instance may serve several tasks,
each in its own worker thread (see `potstill.llms.local`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

from potstill.llms.cache import known_answers
from potstill.llms.failures import all_failed, describe_error, fit_to_count, record_failure
from potstill.llms.structured import (
    StructuredOutput,
    passing_structured_output,
    prepare_request,
    repair,
    repairs,
)
from potstill.llms.typing import Generations
from potstill.llms.usage import tokens_cost
from potstill.typing import ChatType
from potstill.utils.batch_progress import current_batch_progress

if TYPE_CHECKING:
    from potstill.llms.base import LLM


def generate_batch(
    llm: LLM,
    inputs: list[ChatType],
    num_generations: int,
    row_offset: int,
    kwargs: dict[str, Any],
    rows: Optional[list[int]] = None,
    finish: Optional[Callable[[int, Generations], Generations]] = None,
) -> list[Generations]:
    """The generations of every input of a batch, reusing the answers known before.

    Args:
        llm: the loaded LLM.
        inputs: the conversations to continue.
        num_generations: how many generations per input.
        row_offset: the row of the first input of the batch in the dataset.
        kwargs: the generation kwargs.
        rows: each input's position in the batch (default: `0, 1, ...`).
        finish: applied to each new answer (input index, generations) before it is kept
            (the structured-output repairs).

    Returns:
        One `Generations` per input, in input order.
    """
    positions = rows if rows is not None else list(range(len(inputs)))
    known = known_answers(llm)
    if known is None:
        fresh = generate_isolated(llm, inputs, num_generations, row_offset, kwargs, positions)
        return fresh if finish is None else [finish(i, out) for i, out in enumerate(fresh)]
    keys = [known.key(single, kwargs, num_generations, None) for single in inputs]
    results: list[Optional[Generations]] = [
        known.recall(key, row_offset + positions[index]) for index, key in enumerate(keys)
    ]
    missing = [index for index, result in enumerate(results) if result is None]
    for _ in range(len(inputs) - len(missing)):
        llm._usage.record_cached()
    progress = current_batch_progress()
    if progress is not None and len(missing) < len(inputs):
        progress.add(len(inputs) - len(missing))
    if missing:
        fresh = generate_isolated(
            llm,
            [inputs[i] for i in missing],
            num_generations,
            row_offset,
            kwargs,
            [positions[i] for i in missing],
        )
        for index, generations in zip(missing, fresh):
            if finish is not None:
                generations = finish(index, generations)
            results[index] = generations
            known.remember(keys[index], row_offset + positions[index], generations)
    return results  # type: ignore[return-value]


def generate_structured_batch(
    llm: LLM,
    inputs: list[ChatType],
    specs: list[Optional[StructuredOutput]],
    num_generations: int,
    row_offset: int,
    kwargs: dict[str, Any],
) -> list[Generations]:
    """`generate_batch` for inputs with structured output (see `potstill.llms.structured`):
    the inputs that share a structured output are generated together, and each answer is
    checked (and repaired) before it is kept.

    Args:
        llm: the loaded LLM.
        inputs: the conversations to continue.
        specs: each input's structured output, or `None`.
        num_generations: how many generations per input.
        row_offset: the row of the first input in the dataset.
        kwargs: the generation kwargs.

    Returns:
        One `Generations` per input, in input order.
    """
    groups: dict[Optional[StructuredOutput], list[int]] = {}
    for index, spec in enumerate(specs):
        groups.setdefault(spec, []).append(index)
    results: list[Optional[Generations]] = [None] * len(inputs)
    with passing_structured_output():
        for spec, rows in groups.items():
            group = [inputs[i] for i in rows]
            outputs = _generate_group(llm, spec, group, rows, num_generations, row_offset, kwargs)
            for index, output in zip(rows, outputs):
                results[index] = output
    return results  # type: ignore[return-value]


def _generate_group(
    llm: LLM,
    spec: Optional[StructuredOutput],
    inputs: list[ChatType],
    rows: list[int],
    num_generations: int,
    row_offset: int,
    kwargs: dict[str, Any],
) -> list[Generations]:
    if spec is None:
        return generate_batch(llm, inputs, num_generations, row_offset, kwargs, rows)
    prepared = [prepare_request(llm, spec, single, kwargs) for single in inputs]
    sent = [conversation for conversation, _ in prepared]
    call_kwargs = prepared[0][1] if prepared else kwargs

    def finish(index: int, generations: Generations) -> Generations:
        steps = repairs(llm, spec, sent[index], generations, row_offset + rows[index])
        return repair(steps, lambda conversation: generate_one(llm, conversation, call_kwargs))

    return generate_batch(llm, sent, num_generations, row_offset, call_kwargs, rows, finish)


def generate_one(llm: LLM, conversation: ChatType, kwargs: dict[str, Any]) -> Generations:
    """One generation for one conversation, outside the batch's progress (a repair request).

    Args:
        llm: the loaded LLM.
        conversation: the conversation.
        kwargs: the generation kwargs.

    Returns:
        The generation; a failure gives `None` with the error.
    """
    progress = current_batch_progress()
    done = progress.done if progress is not None else 0.0
    try:
        with llm._model_lock:
            (output,) = llm.generate(inputs=[conversation], num_generations=1, **kwargs)
        generations = Generations.coerce(output).resized(1, "no generation returned")
    except Exception as error:
        return Generations.failed(1, describe_error(error))
    finally:
        if progress is not None:
            progress.settle(done)  # a repair is not one more input done
    if not all_failed(generations):
        llm._usage.record_success(generations)
    return generations


def generate_isolated(
    llm: LLM,
    inputs: list[ChatType],
    num_generations: int,
    row_offset: int,
    kwargs: dict[str, Any],
    rows: Optional[list[int]] = None,
) -> list[Generations]:
    """Calls `generate`; a batch that fails is retried input by input.

    Each call ends with exactly its inputs counted in the batch's progress, whatever
    `generate` reported itself; a call that fails takes its reports back before its inputs
    are retried.

    Args:
        llm: the loaded LLM.
        inputs: the conversations to continue.
        num_generations: how many generations per input.
        row_offset: the row of the first input of the batch in the dataset.
        kwargs: the generation kwargs.
        rows: each input's position in the batch (default: `0, 1, ...`).

    Returns:
        One `Generations` per input.
    """
    if not inputs:  # e.g. every row of a batch failed `format_input`
        return []
    rows = rows if rows is not None else list(range(len(inputs)))
    progress = current_batch_progress()
    start = progress.done if progress is not None else 0.0
    try:
        with llm._model_lock:
            outputs = llm.generate(inputs=inputs, num_generations=num_generations, **kwargs)
        results = [
            fit_to_count(llm, Generations.coerce(output), num_generations, row_offset + row)
            for output, row in zip(outputs, rows)
        ]
        if len(outputs) != len(inputs):
            raise RuntimeError(
                f"`generate` returned {len(outputs)} outputs for {len(inputs)} inputs."
            )
    except Exception as error:
        if progress is not None:
            progress.settle(start if len(inputs) > 1 else start + len(inputs))
        if len(inputs) <= 1:
            return [record_failure(llm, num_generations, error, row_offset + rows[0])] * len(inputs)
        return [
            output
            for index, single in enumerate(inputs)
            for output in generate_isolated(
                llm, [single], num_generations, row_offset, kwargs, [rows[index]]
            )
        ]
    price = llm.token_price()
    for index, result in enumerate(results):
        if all_failed(result):
            # `generate` isolated this input's failure itself (e.g. a prompt too long).
            llm.logger.warning(
                "Generation for row %d failed: %s", row_offset + rows[index], result.errors[0]
            )
            llm._usage.record_failure(result.errors[0] or "")
        else:
            usage = result.usage
            cost = tokens_cost(price, usage.input_tokens, usage.output_tokens)
            llm._usage.record_success(result, cost, usage)
    if progress is not None:
        progress.settle(start + len(inputs))
    return results
