"""Behaviors: registration order is outermost first, scoped by applies_to, composed once."""

from dataclasses import dataclass
from typing import Any

import pytest

from mediator import (
    Command,
    Context,
    ContextKey,
    Next,
    Notification,
    Query,
    Registry,
)


@dataclass(frozen=True, slots=True)
class PlaceOrder(Command[str]):
    customer_id: str


@dataclass(frozen=True, slots=True)
class GetOrder(Query[str]):
    order_id: str


@dataclass(frozen=True, slots=True)
class OrderPlaced(Notification):
    order_id: str


class Journal:
    """Records what ran, in order: the fake every test here reads."""

    def __init__(self) -> None:
        self.entries: list[str] = []

    def behavior(self, name: str) -> Any:
        async def behavior(message: object, next: Next[Any], ctx: Context) -> Any:
            self.entries.append(f"{name} before {type(message).__name__}")
            try:
                return await next()
            finally:
                self.entries.append(f"{name} after {type(message).__name__}")

        behavior.__qualname__ = name
        return behavior

    def handler(self, name: str, result: object = None) -> Any:
        async def handler(message: object, ctx: Context) -> object:
            self.entries.append(f"{name} handles {type(message).__name__}")
            return result

        return handler


async def test_the_first_registered_behavior_is_the_outermost() -> None:
    journal = Journal()
    registry = Registry()
    registry.handle(PlaceOrder, journal.handler("handler", "o1"))
    for name in ("log", "authorize", "transaction"):
        registry.behavior(journal.behavior(name), applies_to=object)
    mediator = registry.build()

    assert await mediator.send(PlaceOrder("c1")) == "o1"

    assert journal.entries == [
        "log before PlaceOrder",
        "authorize before PlaceOrder",
        "transaction before PlaceOrder",
        "handler handles PlaceOrder",
        "transaction after PlaceOrder",
        "authorize after PlaceOrder",
        "log after PlaceOrder",
    ]


async def test_applies_to_scopes_each_behavior() -> None:
    journal = Journal()
    registry = Registry()
    registry.handle(PlaceOrder, journal.handler("place"))
    registry.handle(GetOrder, journal.handler("get"))
    registry.subscribe(OrderPlaced, journal.handler("on_placed"))
    registry.behavior(journal.behavior("everything"), applies_to=object)
    registry.behavior(journal.behavior("commands"), applies_to=Command)
    registry.behavior(journal.behavior("queries"), applies_to=Query)
    registry.behavior(journal.behavior("notifications"), applies_to=Notification)
    registry.behavior(journal.behavior("place_only"), applies_to=PlaceOrder)
    mediator = registry.build()

    await mediator.send(PlaceOrder("c1"))
    placed = [entry for entry in journal.entries if "before" in entry]
    journal.entries.clear()
    await mediator.send(GetOrder("o1"))
    got = [entry for entry in journal.entries if "before" in entry]
    journal.entries.clear()
    await mediator.publish(OrderPlaced("o1"))
    published = [entry for entry in journal.entries if "before" in entry]

    assert placed == [
        "everything before PlaceOrder",
        "commands before PlaceOrder",
        "place_only before PlaceOrder",
    ]
    assert got == ["everything before GetOrder", "queries before GetOrder"]
    assert published == ["everything before OrderPlaced", "notifications before OrderPlaced"]


async def test_behaviors_wrap_each_notification_handler_separately() -> None:
    journal = Journal()
    registry = Registry()
    registry.subscribe(OrderPlaced, journal.handler("email"))
    registry.subscribe(OrderPlaced, journal.handler("projection"))
    registry.behavior(journal.behavior("retry"), applies_to=OrderPlaced)
    mediator = registry.build()

    await mediator.publish(OrderPlaced("o1"))

    assert journal.entries == [
        "retry before OrderPlaced",
        "email handles OrderPlaced",
        "retry after OrderPlaced",
        "retry before OrderPlaced",
        "projection handles OrderPlaced",
        "retry after OrderPlaced",
    ]


async def test_a_behavior_may_answer_without_calling_next() -> None:
    journal = Journal()

    async def cached(message: object, next: Next[Any], ctx: Context) -> Any:
        return "from cache"

    registry = Registry()
    registry.handle(GetOrder, journal.handler("get", "from handler"))
    registry.behavior(cached, applies_to=GetOrder)
    mediator = registry.build()

    assert await mediator.send(GetOrder("o1")) == "from cache"
    assert journal.entries == []


async def test_a_behavior_may_change_the_result_and_call_next_again() -> None:
    attempts: list[int] = []

    async def flaky(command: PlaceOrder, ctx: Context) -> str:
        attempts.append(len(attempts) + 1)
        if len(attempts) < 3:
            raise ConnectionError("database went away")
        return "o1"

    async def retry(message: object, next: Next[Any], ctx: Context) -> Any:
        for _ in range(4):
            try:
                return f"{await next()} after retries"
            except ConnectionError:
                continue
        raise AssertionError("unreachable in this test")

    registry = Registry()
    registry.handle(PlaceOrder, flaky)
    registry.behavior(retry, applies_to=Command)
    mediator = registry.build()

    assert await mediator.send(PlaceOrder("c1")) == "o1 after retries"
    assert attempts == [1, 2, 3]


async def test_a_behavior_sees_the_handlers_exception() -> None:
    rolled_back: list[BaseException] = []

    async def transaction(message: object, next: Next[Any], ctx: Context) -> Any:
        try:
            return await next()
        except Exception as exc:
            rolled_back.append(exc)
            raise

    async def fail(command: PlaceOrder, ctx: Context) -> str:
        raise ValueError("out of stock")

    registry = Registry()
    registry.handle(PlaceOrder, fail)
    registry.behavior(transaction, applies_to=Command)
    mediator = registry.build()

    with pytest.raises(ValueError, match="out of stock"):
        await mediator.send(PlaceOrder("c1"))
    assert [str(exc) for exc in rolled_back] == ["out of stock"]


async def test_behaviors_hand_values_to_the_handler_through_context_keys() -> None:
    unit_of_work = ContextKey[list[str]]("unit_of_work")

    async def open_unit_of_work(message: object, next: Next[Any], ctx: Context) -> Any:
        ctx.set(unit_of_work, ["opened"])
        return await next()

    async def place(command: PlaceOrder, ctx: Context) -> str:
        ctx.get(unit_of_work).append("used")
        return ",".join(ctx.get(unit_of_work))

    registry = Registry()
    registry.handle(PlaceOrder, place)
    registry.behavior(open_unit_of_work, applies_to=Command)
    mediator = registry.build()

    assert await mediator.send(PlaceOrder("c1")) == "opened,used"


async def test_a_subclass_seen_at_runtime_gets_the_behaviors_scoped_to_it() -> None:
    journal = Journal()

    @dataclass(frozen=True, slots=True)
    class PlaceGiftOrder(PlaceOrder):
        pass

    registry = Registry()
    registry.handle(PlaceOrder, journal.handler("place"))
    registry.behavior(journal.behavior("gift_wrap"), applies_to=PlaceGiftOrder)
    mediator = registry.build()

    await mediator.send(PlaceOrder("c1"))
    await mediator.send(PlaceGiftOrder("c2"))

    assert journal.entries == [
        "place handles PlaceOrder",
        "gift_wrap before PlaceGiftOrder",
        "place handles PlaceGiftOrder",
        "gift_wrap after PlaceGiftOrder",
    ]


async def test_behaviors_may_be_async_callable_objects() -> None:
    class Tag:
        def __init__(self, tag: str) -> None:
            self.tag = tag

        async def __call__(self, message: object, next: Next[Any], ctx: Context) -> Any:
            return f"{self.tag}({await next()})"

    async def get(query: GetOrder, ctx: Context) -> str:
        return query.order_id

    registry = Registry()
    registry.handle(GetOrder, get)
    registry.behavior(Tag("outer"))
    registry.behavior(Tag("inner"))
    mediator = registry.build()

    assert await mediator.send(GetOrder("o1")) == "outer(inner(o1))"
