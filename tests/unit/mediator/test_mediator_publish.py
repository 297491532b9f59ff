"""publish(): every handler of the type and its bases runs, isolated from the others."""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from mediator import (
    HANDLER_NAME,
    Concurrent,
    Context,
    ContextKey,
    MediatorError,
    Next,
    Notification,
    Publisher,
    PublishError,
    Registry,
    Sequential,
)


@dataclass(frozen=True, slots=True)
class OrderEvent(Notification):
    order_id: str


@dataclass(frozen=True, slots=True)
class OrderPlaced(OrderEvent):
    pass


@dataclass(frozen=True, slots=True)
class OrderShipped(OrderEvent):
    pass


STRATEGIES = [
    pytest.param(Sequential(), id="sequential"),
    pytest.param(Concurrent(limit=4), id="concurrent"),
]


class Inbox:
    """Collects what each handler received."""

    def __init__(self) -> None:
        self.received: list[str] = []

    def handler(self, name: str) -> Any:
        async def handler(note: OrderEvent, ctx: Context) -> None:
            self.received.append(f"{name}: {type(note).__name__} {note.order_id}")

        handler.__qualname__ = name
        return handler


async def wait_until(condition: Callable[[], bool]) -> None:
    """Let other tasks run until ``condition`` holds (a few loop turns at most here)."""
    for _ in range(100):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def send_email(note: OrderPlaced, ctx: Context) -> None:
    raise ConnectionError("smtp down")


async def update_stock(note: OrderPlaced, ctx: Context) -> None:
    raise ValueError("negative stock")


@pytest.mark.parametrize("publisher", STRATEGIES)
async def test_every_handler_of_the_type_and_of_its_bases_receives_it(
    publisher: Publisher,
) -> None:
    inbox = Inbox()
    registry = Registry()
    registry.subscribe(OrderPlaced, inbox.handler("projection"))
    registry.subscribe(OrderEvent, inbox.handler("audit"))
    registry.subscribe(OrderShipped, inbox.handler("courier"))
    mediator = registry.build(publisher=publisher)

    await mediator.publish(OrderPlaced("o1"))
    await mediator.publish(OrderShipped("o2"))

    assert sorted(inbox.received) == [
        "audit: OrderPlaced o1",
        "audit: OrderShipped o2",
        "courier: OrderShipped o2",
        "projection: OrderPlaced o1",
    ]


async def test_sequential_runs_handlers_in_subscription_order() -> None:
    inbox = Inbox()
    registry = Registry()
    for name in ("first", "second", "third"):
        registry.subscribe(OrderEvent if name == "second" else OrderPlaced, inbox.handler(name))
    mediator = registry.build(publisher=Sequential())

    await mediator.publish(OrderPlaced("o1"))

    assert inbox.received == [
        "first: OrderPlaced o1",
        "second: OrderPlaced o1",
        "third: OrderPlaced o1",
    ]


async def test_a_handler_subscribed_to_a_type_and_its_base_receives_it_once() -> None:
    inbox = Inbox()
    handler = inbox.handler("audit")
    registry = Registry()
    registry.subscribe(OrderEvent, handler)
    registry.subscribe(OrderPlaced, handler)
    mediator = registry.build()

    await mediator.publish(OrderPlaced("o1"))

    assert inbox.received == ["audit: OrderPlaced o1"]


async def test_publishing_a_type_nobody_subscribed_to_reaches_no_handler() -> None:
    inbox = Inbox()
    registry = Registry()
    registry.subscribe(OrderShipped, inbox.handler("courier"))
    mediator = registry.build()

    await mediator.publish(OrderPlaced("o1"))
    await Registry().build().publish(OrderPlaced("o2"))

    assert inbox.received == []


@pytest.mark.parametrize("publisher", STRATEGIES)
async def test_failing_handlers_do_not_stop_the_others_and_are_all_reported(
    publisher: Publisher, caplog: pytest.LogCaptureFixture
) -> None:
    inbox = Inbox()
    registry = Registry()
    registry.subscribe(OrderPlaced, send_email)
    registry.subscribe(OrderPlaced, inbox.handler("projection"))
    registry.subscribe(OrderPlaced, update_stock)
    registry.subscribe(OrderEvent, inbox.handler("audit"))
    mediator = registry.build(publisher=publisher)

    with (
        caplog.at_level(logging.ERROR, logger="mediator"),
        pytest.raises(PublishError) as caught,
    ):
        await mediator.publish(OrderPlaced("o1"), Context(correlation_id="req-7"))

    assert sorted(inbox.received) == ["audit: OrderPlaced o1", "projection: OrderPlaced o1"]
    error = caught.value
    assert isinstance(error, ExceptionGroup)
    assert isinstance(error, MediatorError)
    names = [name for name, _ in error.failures]
    assert names == [
        "tests.unit.mediator.test_mediator_publish.send_email",
        "tests.unit.mediator.test_mediator_publish.update_stock",
    ]
    assert [type(exc) for _, exc in error.failures] == [ConnectionError, ValueError]
    assert list(error.exceptions) == [exc for _, exc in error.failures]
    assert str(error).startswith("2 of 4 handlers of")
    assert (
        str(error)
        .split(": ", 1)[1]
        .startswith(
            "tests.unit.mediator.test_mediator_publish.send_email, "
            "tests.unit.mediator.test_mediator_publish.update_stock"
        )
    )
    for name, exc in error.failures:
        assert exc.__notes__ == [f"raised by notification handler {name}"]
    logged = [r for r in caplog.records if r.name == "mediator" and r.levelno == logging.ERROR]
    assert len(logged) == 2
    assert "test_mediator_publish.send_email" in logged[0].getMessage()
    assert "req-7" in logged[0].getMessage()
    assert logged[0].exc_info is not None


async def test_publish_error_splits_with_except_star_keeping_the_names() -> None:
    registry = Registry()
    registry.subscribe(OrderPlaced, send_email)
    registry.subscribe(OrderPlaced, update_stock)
    mediator = registry.build()
    connection_failures: list[BaseExceptionGroup[ConnectionError]] = []

    async def publish_handling_connection_failures() -> None:
        try:
            await mediator.publish(OrderPlaced("o1"))
        except* ConnectionError as group:
            connection_failures.append(group)

    with pytest.raises(PublishError) as rest:
        await publish_handling_connection_failures()

    [handled] = connection_failures
    assert isinstance(handled, PublishError)
    assert [name.rsplit(".", 1)[1] for name, _ in handled.failures] == ["send_email"]
    assert [name.rsplit(".", 1)[1] for name, _ in rest.value.failures] == ["update_stock"]


@pytest.mark.parametrize("publisher", STRATEGIES)
async def test_each_handler_gets_its_own_context_for_its_behaviors(publisher: Publisher) -> None:
    unit_of_work = ContextKey[str]("unit_of_work")
    tenant = ContextKey[str]("tenant")
    seen: list[tuple[str, str, str, str]] = []
    opened: list[str | None] = []

    async def open_unit_of_work(note: OrderPlaced, next: Next[Any], ctx: Context) -> Any:
        opened.append(ctx.find(unit_of_work))  # None unless another handler's leaked in
        ctx.set(unit_of_work, f"uow {len(opened)}")
        await asyncio.sleep(0)  # let a concurrent handler run in between
        return await next()

    def make_handler(name: str) -> Any:
        async def handler(note: OrderPlaced, ctx: Context) -> None:
            await asyncio.sleep(0)
            seen.append((name, ctx.get(unit_of_work), ctx.get(tenant), ctx.correlation_id))

        return handler

    registry = Registry()
    registry.subscribe(OrderPlaced, make_handler("a"))
    registry.subscribe(OrderPlaced, make_handler("b"))
    registry.behavior(open_unit_of_work, applies_to=OrderPlaced)
    mediator = registry.build(publisher=publisher)
    ctx = Context(correlation_id="req-1")
    ctx.set(tenant, "acme")

    await mediator.publish(OrderPlaced("o1"), ctx)

    # Concurrently, b's behavior sets its unit of work while a's handler waits: on a shared
    # context, a would then see b's.
    assert sorted(seen) == [("a", "uow 1", "acme", "req-1"), ("b", "uow 2", "acme", "req-1")]
    assert opened == [None, None]
    assert ctx.find(unit_of_work) is None


async def test_concurrent_runs_at_most_limit_handlers_at_once() -> None:
    in_flight = 0
    most_in_flight = 0
    finished = 0

    def make_handler() -> Any:
        async def handler(note: OrderPlaced, ctx: Context) -> None:
            nonlocal in_flight, most_in_flight, finished
            in_flight += 1
            most_in_flight = max(most_in_flight, in_flight)
            await asyncio.sleep(0.01)
            in_flight -= 1
            finished += 1

        return handler

    registry = Registry()
    for _ in range(10):
        registry.subscribe(OrderPlaced, make_handler())
    mediator = registry.build(publisher=Concurrent(limit=3))

    await mediator.publish(OrderPlaced("o1"))

    assert finished == 10
    assert most_in_flight == 3  # the limit holds, and is reached: they do run concurrently


async def test_sequential_runs_one_handler_at_a_time() -> None:
    in_flight = 0
    most_in_flight = 0

    def make_handler() -> Any:
        async def handler(note: OrderPlaced, ctx: Context) -> None:
            nonlocal in_flight, most_in_flight
            in_flight += 1
            most_in_flight = max(most_in_flight, in_flight)
            await asyncio.sleep(0)
            in_flight -= 1

        return handler

    registry = Registry()
    for _ in range(4):
        registry.subscribe(OrderPlaced, make_handler())
    mediator = registry.build(publisher=Sequential())

    await mediator.publish(OrderPlaced("o1"))

    assert most_in_flight == 1


@pytest.mark.parametrize(
    ("publisher", "running"),
    [
        pytest.param(Sequential(), ["a"], id="sequential"),
        pytest.param(Concurrent(limit=4), ["a", "b"], id="concurrent"),
    ],
)
async def test_cancelling_publish_cancels_the_handlers_and_is_not_swallowed(
    publisher: Publisher, running: list[str]
) -> None:
    started: list[str] = []
    cleaned_up: list[str] = []

    def slow(name: str) -> Any:
        async def handler(note: OrderPlaced, ctx: Context) -> None:
            started.append(name)
            try:
                await asyncio.sleep(10)
            finally:
                cleaned_up.append(name)

        return handler

    registry = Registry()
    registry.subscribe(OrderPlaced, slow("a"))
    registry.subscribe(OrderPlaced, slow("b"))
    mediator = registry.build(publisher=publisher)

    task = asyncio.create_task(mediator.publish(OrderPlaced("o1")))
    await wait_until(lambda: len(started) == len(running))
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(cleaned_up) == running


@pytest.mark.parametrize("publisher", STRATEGIES)
async def test_only_the_handlers_named_are_delivered_to(publisher: Publisher) -> None:
    inbox = Inbox()
    registry = Registry()
    registry.subscribe(OrderPlaced, inbox.handler("email"), name="orders.email")
    registry.subscribe(OrderPlaced, inbox.handler("stock"), name="orders.stock")
    registry.subscribe(OrderEvent, inbox.handler("audit"), name="orders.audit")
    mediator = registry.build(publisher=publisher)

    assert mediator.subscribers(OrderPlaced) == ("orders.email", "orders.stock", "orders.audit")
    await mediator.publish(OrderPlaced("o1"), only={"orders.stock", "orders.audit"})
    await mediator.publish(OrderPlaced("o2"), only=())

    assert sorted(inbox.received) == ["audit: OrderPlaced o1", "stock: OrderPlaced o1"]


async def test_a_handler_finds_its_own_name_on_its_context() -> None:
    names: list[str] = []

    async def handler(note: OrderPlaced, ctx: Context) -> None:
        names.append(ctx.get(HANDLER_NAME))

    registry = Registry()
    registry.subscribe(OrderPlaced, handler, name="orders.named")
    registry.subscribe(OrderPlaced, send_email)
    mediator = registry.build()
    with pytest.raises(PublishError) as failed:
        await mediator.publish(OrderPlaced("o1"))

    assert names == ["orders.named"]
    assert [name for name, _ in failed.value.failures] == [f"{__name__}.send_email"]


def test_a_name_given_is_one_handlers() -> None:
    inbox = Inbox()
    registry = Registry()
    registry.subscribe(OrderPlaced, inbox.handler("a"), name="orders.one")
    with pytest.raises(MediatorError, match=r"two notification handlers are named orders\.one"):
        registry.subscribe(OrderShipped, inbox.handler("b"), name="orders.one")
