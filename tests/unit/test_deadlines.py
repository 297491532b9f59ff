"""The watchdog that holds operations to their deadline."""

from __future__ import annotations

import asyncio

import pytest

from orderdesk.deadlines import Deadlines


async def test_an_operation_past_its_deadline_is_cancelled_and_told_as_a_timeout() -> None:
    deadlines = Deadlines(0.05, tick=0.01)
    cancelled = asyncio.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    started = asyncio.get_running_loop().time()
    with pytest.raises(TimeoutError):
        await deadlines.run(slow())
    assert asyncio.get_running_loop().time() - started < 1
    assert cancelled.is_set()
    # The task is not left cancelling: it goes on awaiting as usual.
    current = asyncio.current_task()
    assert current is not None
    assert current.cancelling() == 0
    await asyncio.sleep(0)


async def test_an_operation_within_its_deadline_gives_its_result() -> None:
    deadlines = Deadlines(5, tick=0.01)

    async def quick() -> int:
        await asyncio.sleep(0.02)
        return 7

    assert await asyncio.gather(*(deadlines.run(quick()) for _ in range(3))) == [7, 7, 7]


async def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    deadlines = Deadlines(5, tick=0.01)
    task = asyncio.create_task(deadlines.run(asyncio.sleep(10)))
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_the_watchdog_runs_only_while_operations_are_in_flight() -> None:
    deadlines = Deadlines(5, tick=0.01)
    await deadlines.run(asyncio.sleep(0.03))
    await asyncio.sleep(0.05)
    assert not deadlines.watching
