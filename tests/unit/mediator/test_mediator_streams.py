"""stream(): one handler, wrapped in stream behaviors, closed all the way down."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from mediator import (
    Context,
    DeadlineExceeded,
    NextStream,
    NoHandlerError,
    Registry,
    StreamRequest,
)


@dataclass(frozen=True, slots=True)
class WatchOrders(StreamRequest[int]):
    customer_id: str


@dataclass(frozen=True, slots=True)
class Unwatched(StreamRequest[int]):
    pass


class Feed:
    """A stream handler over a fixed list of positions that records its own lifecycle."""

    def __init__(self, positions: list[int], *, then_wait: bool = False) -> None:
        self.positions = positions
        self.then_wait = then_wait
        self.events: list[str] = []

    async def __call__(self, request: WatchOrders, ctx: Context) -> AsyncIterator[int]:
        self.events.append(f"open {request.customer_id}")
        try:
            for position in self.positions:
                yield position
            if self.then_wait:
                await asyncio.sleep(10)
        finally:
            self.events.append("closed")


def stream_behavior(name: str, events: list[str]) -> Any:
    async def behavior(
        request: WatchOrders, next: NextStream[int], ctx: Context
    ) -> AsyncIterator[int]:
        events.append(f"{name} open")
        try:
            # A plain ``async for``, as most behaviors are written: closing this generator
            # does not close the inner one by itself; the mediator must.
            async for item in next():
                yield item
        finally:
            events.append(f"{name} closed")

    return behavior


async def test_stream_yields_what_the_handler_yields() -> None:
    feed = Feed([1, 2, 3])
    registry = Registry()
    registry.stream(WatchOrders, feed)
    mediator = registry.build()

    items = [item async for item in mediator.stream(WatchOrders("c1"))]

    assert items == [1, 2, 3]
    assert feed.events == ["open c1", "closed"]


async def test_stream_behaviors_wrap_outermost_first_and_may_transform_and_filter() -> None:
    events: list[str] = []

    async def at_least_25(
        request: WatchOrders, next: NextStream[int], ctx: Context
    ) -> AsyncIterator[int]:
        events.append("filter open")
        async for item in next():
            if item >= 25:
                yield item

    async def times_ten(
        request: WatchOrders, next: NextStream[int], ctx: Context
    ) -> AsyncIterator[int]:
        events.append("scale open")
        async for item in next():
            yield item * 10

    registry = Registry()
    registry.stream(WatchOrders, Feed([1, 2, 3, 4]))
    registry.stream_behavior(at_least_25, applies_to=WatchOrders)
    registry.stream_behavior(times_ten)
    mediator = registry.build()

    items = [item async for item in mediator.stream(WatchOrders("c1"))]

    # The outer filter sees the inner behavior's items: 10, 20, 30, 40.
    assert items == [30, 40]
    assert events == ["filter open", "scale open"]


async def test_aclose_closes_the_behaviors_and_the_handler() -> None:
    events: list[str] = []
    feed = Feed([1, 2, 3], then_wait=True)
    registry = Registry()
    registry.stream(WatchOrders, feed)
    registry.stream_behavior(stream_behavior("outer", events))
    registry.stream_behavior(stream_behavior("inner", events))
    mediator = registry.build()

    items = mediator.stream(WatchOrders("c1"))
    assert await anext(items) == 1
    await items.aclose()

    assert feed.events == ["open c1", "closed"]
    assert events == ["outer open", "inner open", "outer closed", "inner closed"]


async def test_leaving_aclosing_early_closes_the_handler() -> None:
    feed = Feed([1, 2, 3])
    registry = Registry()
    registry.stream(WatchOrders, feed)
    registry.stream_behavior(stream_behavior("only", []))
    mediator = registry.build()

    async with contextlib.aclosing(mediator.stream(WatchOrders("c1"))) as items:
        async for item in items:
            if item == 2:
                break

    assert feed.events == ["open c1", "closed"]


async def test_cancelling_the_consumer_closes_the_handler() -> None:
    events: list[str] = []
    feed = Feed([1], then_wait=True)
    registry = Registry()
    registry.stream(WatchOrders, feed)
    registry.stream_behavior(stream_behavior("outer", events))
    mediator = registry.build()
    received: list[int] = []

    async def consume() -> None:
        async for item in mediator.stream(WatchOrders("c1")):
            received.append(item)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)  # one turn: the consumer gets the first item and waits for more
    assert received == [1]
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    assert feed.events == ["open c1", "closed"]
    assert events == ["outer open", "outer closed"]


async def test_a_deadline_bounds_the_whole_iteration() -> None:
    feed = Feed([1, 2], then_wait=True)
    registry = Registry()
    registry.stream(WatchOrders, feed)
    mediator = registry.build()
    received: list[int] = []

    async def consume() -> None:
        async for item in mediator.stream(WatchOrders("c1"), Context().with_timeout(0.05)):
            received.append(item)

    with pytest.raises(DeadlineExceeded, match="WatchOrders"):
        await consume()

    assert received == [1, 2]
    assert feed.events == ["open c1", "closed"]


async def test_a_deadline_already_past_opens_no_stream() -> None:
    feed = Feed([1])
    registry = Registry()
    registry.stream(WatchOrders, feed)
    mediator = registry.build()
    past = Context(deadline=asyncio.get_running_loop().time() - 1)

    with pytest.raises(DeadlineExceeded):
        await anext(mediator.stream(WatchOrders("c1"), past))

    assert feed.events == []


def test_streaming_a_type_without_handler_fails_at_once() -> None:
    registry = Registry()
    registry.stream(WatchOrders, Feed([]))
    mediator = registry.build()

    with pytest.raises(NoHandlerError, match=r"stream handler.*Unwatched"):
        mediator.stream(Unwatched())


async def test_a_stream_handler_for_a_base_serves_its_subclasses() -> None:
    @dataclass(frozen=True, slots=True)
    class WatchBigOrders(WatchOrders):
        pass

    registry = Registry()
    registry.stream(WatchOrders, Feed([7]))
    mediator = registry.build()

    assert [item async for item in mediator.stream(WatchBigOrders("c9"))] == [7]
