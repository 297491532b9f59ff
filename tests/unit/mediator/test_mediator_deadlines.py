"""Deadlines and cancellation: handlers observe CancelledError and clean up."""

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from mediator import (
    Command,
    Context,
    DeadlineExceeded,
    MediatorError,
    Next,
    Notification,
    Registry,
)


@dataclass(frozen=True, slots=True)
class ExportOrders(Command[str]):
    seconds: float


@dataclass(frozen=True, slots=True)
class OrderPlaced(Notification):
    order_id: str


class Lifecycle:
    """What the handler and behaviors saw happen to them."""

    def __init__(self) -> None:
        self.events: list[str] = []

    async def handler(self, command: ExportOrders, ctx: Context) -> str:
        self.events.append("handler started")
        try:
            await asyncio.sleep(command.seconds)
        except asyncio.CancelledError:
            self.events.append("handler cancelled")
            raise
        finally:
            self.events.append("handler finally")
        return "exported"

    async def behavior(self, message: object, next: Next[Any], ctx: Context) -> Any:
        try:
            return await next()
        finally:
            self.events.append("behavior finally")


def build(lifecycle: Lifecycle) -> Any:
    async def swallow_everything(exc: Exception, message: object, ctx: Context) -> str:
        return "swallowed"

    registry = Registry()
    registry.handle(ExportOrders, lifecycle.handler)
    registry.behavior(lifecycle.behavior)
    # Catches every Exception: cancellation and deadlines must pass through it regardless.
    registry.on_exception(Exception, swallow_everything)
    return registry.build()


async def test_a_deadline_already_past_raises_without_calling_the_handler() -> None:
    lifecycle = Lifecycle()
    mediator = build(lifecycle)
    ctx = Context(deadline=asyncio.get_running_loop().time() - 0.001)

    with pytest.raises(DeadlineExceeded, match="ExportOrders"):
        await mediator.send(ExportOrders(0), ctx)

    assert lifecycle.events == []


async def test_a_deadline_passing_mid_handler_cancels_it_cleanly() -> None:
    lifecycle = Lifecycle()
    mediator = build(lifecycle)

    with pytest.raises(DeadlineExceeded) as caught:
        await mediator.send(ExportOrders(10), Context().with_timeout(0.02))

    assert isinstance(caught.value, TimeoutError)
    assert isinstance(caught.value, MediatorError)
    assert lifecycle.events == [
        "handler started",
        "handler cancelled",
        "handler finally",
        "behavior finally",
    ]


async def test_a_deadline_not_reached_changes_nothing() -> None:
    lifecycle = Lifecycle()
    mediator = build(lifecycle)

    assert await mediator.send(ExportOrders(0), Context().with_timeout(5)) == "exported"


async def test_a_handlers_own_timeout_is_not_taken_for_the_deadline() -> None:
    async def call_slow_service(command: ExportOrders, ctx: Context) -> str:
        async with asyncio.timeout(0.001):
            await asyncio.sleep(1)
        return "unreachable"

    registry = Registry()
    registry.handle(ExportOrders, call_slow_service)
    mediator = registry.build()

    with pytest.raises(TimeoutError) as caught:
        await mediator.send(ExportOrders(0), Context().with_timeout(5))
    assert not isinstance(caught.value, DeadlineExceeded)


async def test_cancelling_the_caller_cancels_the_handler() -> None:
    lifecycle = Lifecycle()
    mediator = build(lifecycle)

    task = asyncio.create_task(mediator.send(ExportOrders(10)))
    await asyncio.sleep(0)  # one turn: the task starts and reaches the handler's sleep
    assert lifecycle.events == ["handler started"]
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    assert lifecycle.events == [
        "handler started",
        "handler cancelled",
        "handler finally",
        "behavior finally",
    ]


async def test_a_deadline_passing_mid_publish_cancels_the_handlers() -> None:
    cleaned_up: list[str] = []

    async def slow_projection(note: OrderPlaced, ctx: Context) -> None:
        try:
            await asyncio.sleep(10)
        finally:
            cleaned_up.append(note.order_id)

    registry = Registry()
    registry.subscribe(OrderPlaced, slow_projection)
    mediator = registry.build()

    with pytest.raises(DeadlineExceeded, match="OrderPlaced"):
        await mediator.publish(OrderPlaced("o1"), Context().with_timeout(0.02))
    assert cleaned_up == ["o1"]


async def test_a_deadline_already_past_publishes_nothing() -> None:
    received: list[str] = []

    async def projection(note: OrderPlaced, ctx: Context) -> None:
        received.append(note.order_id)

    registry = Registry()
    registry.subscribe(OrderPlaced, projection)
    mediator = registry.build()
    ctx = Context(deadline=asyncio.get_running_loop().time())

    with pytest.raises(DeadlineExceeded):
        await mediator.publish(OrderPlaced("o1"), ctx)
    assert received == []
