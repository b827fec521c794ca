"""`RequestSlots`: the limit behind `max_concurrent_requests`."""

from __future__ import annotations

import asyncio

from potstill.llms.request_slots import RequestSlots


async def _hold(slots: RequestSlots, name: str, order: list[str], gate: asyncio.Event) -> None:
    async with slots:
        order.append(name)
        await gate.wait()


def test_at_most_size_hold_a_slot_and_the_others_get_theirs_in_arrival_order() -> None:
    async def scenario() -> tuple[list[str], list[str], int]:
        slots, order, gate = RequestSlots(2), [], asyncio.Event()
        tasks = [asyncio.create_task(_hold(slots, f"r{i}", order, gate)) for i in range(5)]
        await asyncio.sleep(0.01)
        first = list(order)
        gate.set()
        await asyncio.gather(*tasks)
        return first, order, slots.free

    first, order, free = asyncio.run(scenario())
    assert first == ["r0", "r1"]
    assert order == ["r0", "r1", "r2", "r3", "r4"]
    assert free == 2


def test_a_request_cancelled_while_waiting_gives_up_its_place() -> None:
    async def scenario() -> tuple[list[str], int]:
        slots, order, gate = RequestSlots(1), [], asyncio.Event()
        holder = asyncio.create_task(_hold(slots, "holder", order, gate))
        await asyncio.sleep(0)
        waiting = asyncio.create_task(_hold(slots, "cancelled", order, asyncio.Event()))
        last = asyncio.create_task(_hold(slots, "last", order, gate))
        await asyncio.sleep(0.01)
        waiting.cancel()
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(holder, last)
        return order, slots.free

    order, free = asyncio.run(scenario())
    assert order == ["holder", "last"]
    assert free == 1


def test_a_slot_handed_to_a_request_cancelled_at_that_moment_is_passed_on() -> None:
    async def scenario() -> tuple[list[str], int]:
        slots, order = RequestSlots(1), []
        await slots.__aenter__()
        handed = asyncio.create_task(_hold(slots, "handed", order, asyncio.Event()))
        after = asyncio.create_task(_hold(slots, "after", order, asyncio.Event()))
        await asyncio.sleep(0)
        slots.release()  # `handed` gets the slot...
        handed.cancel()  # ...and is cancelled before it runs again
        await asyncio.sleep(0.01)
        after.cancel()
        await asyncio.gather(handed, after, return_exceptions=True)
        return order, slots.free

    order, free = asyncio.run(scenario())
    assert order == ["after"]
    assert free == 1
