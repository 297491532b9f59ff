"""Shared subscriptions over fake sources and sockets: one execution, many members."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from graphql import GraphQLError
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError

from orderdesk.shared_subscriptions import Frame, SharedSubscriptions

QUERY = "subscription { productEvents { position type } }"


def event(position: int) -> ExecutionResult:
    return ExecutionResult(
        data={"productEvents": {"position": str(position), "type": "UPDATED"}}, errors=None
    )


class Source:
    """An operation whose results the test pushes; counts how often it was started."""

    def __init__(self) -> None:
        self.starts = 0
        self.closed = asyncio.Event()
        self.queue: asyncio.Queue[ExecutionResult | None] = asyncio.Queue()

    async def start(self) -> AsyncGenerator[ExecutionResult, None]:
        self.starts += 1
        return self._results()

    async def _results(self) -> AsyncGenerator[ExecutionResult, None]:
        try:
            while (result := await self.queue.get()) is not None:
                yield result
        finally:
            self.closed.set()


class Member:
    def __init__(self, shared: SharedSubscriptions, source: Source) -> None:
        self.frames: list[Frame] = []
        self.cut_off_at: list[str | None] = []
        self.gate: asyncio.Event | None = None
        self.received = asyncio.Condition()
        key = shared.key(QUERY, None, None, "staff")
        assert key is not None
        self.task = asyncio.create_task(shared.follow(key, source.start, self._send, self._cut_off))

    async def _send(self, frame: Frame) -> None:
        if self.gate is not None:
            await self.gate.wait()
        async with self.received:
            self.frames.append(frame)
            self.received.notify_all()

    async def _cut_off(self, position: str | None) -> None:
        self.cut_off_at.append(position)

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(5), self.received:
            await self.received.wait_for(lambda: len(self.frames) >= count)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_members_of_one_key_share_one_execution() -> None:
    shared, source = SharedSubscriptions(queue_size=10), Source()
    first, second = Member(shared, source), Member(shared, source)
    await settle()
    for position in (1, 2, 3):
        source.queue.put_nowait(event(position))
    await first.wait_for(3)
    await second.wait_for(3)
    assert source.starts == 1
    assert [f.position for f in first.frames] == ["1", "2", "3"]
    assert first.frames == second.frames
    assert first.frames[0].payload == (
        '{"data": {"productEvents": {"position": "1", "type": "UPDATED"}}}'
    )
    source.queue.put_nowait(None)
    await asyncio.wait_for(asyncio.gather(first.task, second.task), 5)
    assert first.frames[-1] == Frame("complete")
    assert shared.group_count == 0


def test_only_cursorless_subscriptions_by_one_caller_share() -> None:
    shared = SharedSubscriptions(queue_size=10)
    assert shared.key(QUERY, None, None, "a") == shared.key(QUERY, {}, None, "a")
    assert shared.key(QUERY, None, None, "a") != shared.key(QUERY, None, None, "b")
    assert shared.key(QUERY, {"x": 1}, None, "a") != shared.key(QUERY, {"x": 2}, None, "a")
    replaying = 'subscription { productEvents(after: "0") { position } }'
    assert shared.key(replaying, None, None, "a") is None
    assert shared.key("{ products { totalCount } }", None, None, "a") is None
    assert shared.key("subscription {", None, None, "a") is None


async def test_a_member_that_falls_behind_is_cut_off_alone() -> None:
    shared, source = SharedSubscriptions(queue_size=3), Source()
    quick, stuck = Member(shared, source), Member(shared, source)
    await settle()
    source.queue.put_nowait(event(1))
    await quick.wait_for(1)
    await stuck.wait_for(1)
    stuck.gate = asyncio.Event()  # its socket stops taking frames
    for position in range(2, 9):
        source.queue.put_nowait(event(position))
        await quick.wait_for(position)
    stuck.gate.set()
    await asyncio.wait_for(stuck.task, 5)
    # Frame 2 was in its socket's hands; 3 to 5 filled its queue, 6 overflowed it.
    assert [f.position for f in stuck.frames] == ["1", "2"]
    assert stuck.cut_off_at == ["2"]
    assert [f.position for f in quick.frames] == [str(p) for p in range(1, 9)]
    assert not quick.task.done()
    quick.task.cancel()
    await asyncio.wait_for(source.closed.wait(), 5)


async def test_the_last_member_leaving_stops_the_execution() -> None:
    shared, source = SharedSubscriptions(queue_size=10), Source()
    members = [Member(shared, source) for _ in range(3)]
    await settle()
    for member in members[:2]:
        member.task.cancel()
    await settle()
    assert not source.closed.is_set()
    members[2].task.cancel()
    await asyncio.wait_for(source.closed.wait(), 5)
    assert shared.group_count == 0
    # A new subscriber starts a new execution.
    Member(shared, source)
    await settle()
    assert source.starts == 2


async def test_a_refused_operation_ends_every_member_with_its_error() -> None:
    shared = SharedSubscriptions(queue_size=10)

    async def refused() -> AsyncGenerator[Any, None]:
        yield PreExecutionError(data=None, errors=[GraphQLError("Sign in to do this")])

    async def start() -> AsyncGenerator[Any, None]:
        return refused()

    frames: list[Frame] = []
    send: Callable[[Frame], Awaitable[None]] = lambda frame: _append(frames, frame)  # noqa: E731
    key = shared.key(QUERY, None, None, None)
    assert key is not None
    await asyncio.wait_for(shared.follow(key, start, send, _never), 5)
    assert [f.kind for f in frames] == ["error"]
    assert "Sign in" in frames[0].payload


async def _append(frames: list[Frame], frame: Frame) -> None:
    frames.append(frame)


async def _never(position: str | None) -> None:
    raise AssertionError("not cut off")
