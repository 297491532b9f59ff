"""describe() and describe_text(): what runs for each registered message type."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from mediator import (
    Command,
    Context,
    Next,
    NextStream,
    Notification,
    Query,
    Registry,
    Route,
    StreamRequest,
)

HERE = "tests.unit.mediator.test_mediator_describe"


@dataclass(frozen=True, slots=True)
class PlaceOrder(Command[str]):
    customer_id: str


@dataclass(frozen=True, slots=True)
class GetOrder(Query[str]):
    order_id: str


@dataclass(frozen=True, slots=True)
class OrderPlaced(Notification):
    order_id: str


@dataclass(frozen=True, slots=True)
class WatchOrders(StreamRequest[str]):
    pass


class DomainError(Exception):
    pass


async def place_order(command: PlaceOrder, ctx: Context) -> str:
    return "o1"


async def get_order(query: GetOrder, ctx: Context) -> str:
    return query.order_id


async def project_order(note: OrderPlaced, ctx: Context) -> None:
    return None


async def email_customer(note: OrderPlaced, ctx: Context) -> None:
    return None


async def watch_orders(request: WatchOrders, ctx: Context) -> AsyncIterator[str]:
    yield "o1"


async def log_message(message: object, next: Next[Any], ctx: Context) -> Any:
    return await next()


async def transaction(message: object, next: Next[Any], ctx: Context) -> Any:
    return await next()


async def throttle(request: WatchOrders, next: NextStream[str], ctx: Context) -> AsyncIterator[str]:
    async for item in next():
        yield item


async def to_typed_error(exc: DomainError, message: object, ctx: Context) -> str:
    return str(exc)


def build() -> Any:
    registry = Registry()
    registry.subscribe(OrderPlaced, project_order)
    registry.subscribe(OrderPlaced, email_customer)
    registry.handle(PlaceOrder, place_order)
    registry.handle(GetOrder, get_order)
    registry.stream(WatchOrders, watch_orders)
    registry.behavior(log_message, applies_to=object)
    registry.behavior(transaction, applies_to=Command)
    registry.stream_behavior(throttle)
    registry.on_exception(DomainError, to_typed_error, applies_to=Command)
    return registry.build()


def test_describe_lists_every_registered_type_with_what_runs_for_it() -> None:
    routes = build().describe()

    assert routes == [
        Route(
            message_type=GetOrder,
            kind="request",
            handlers=(f"{HERE}.get_order",),
            behaviors=(f"{HERE}.log_message",),
            exception_handlers=(),
        ),
        Route(
            message_type=PlaceOrder,
            kind="request",
            handlers=(f"{HERE}.place_order",),
            behaviors=(f"{HERE}.log_message", f"{HERE}.transaction"),
            exception_handlers=(f"{HERE}.DomainError -> {HERE}.to_typed_error",),
        ),
        Route(
            message_type=OrderPlaced,
            kind="notification",
            handlers=(f"{HERE}.project_order", f"{HERE}.email_customer"),
            behaviors=(f"{HERE}.log_message",),
            exception_handlers=(),
        ),
        Route(
            message_type=WatchOrders,
            kind="stream",
            handlers=(f"{HERE}.watch_orders",),
            behaviors=(f"{HERE}.throttle",),
            exception_handlers=(),
        ),
    ]


def test_describe_text_is_a_table_of_the_same() -> None:
    text = build().describe_text()
    lines = text.splitlines()

    assert lines[0].split() == [
        "KIND",
        "MESSAGE",
        "ROLE",
        "NAME",
        "(behaviors",
        "outermost",
        "first)",
    ]
    assert lines[1].split() == ["request", f"{HERE}.GetOrder", "handler", f"{HERE}.get_order"]
    place = lines[3:7]
    assert [line.split() for line in place] == [
        ["request", f"{HERE}.PlaceOrder", "handler", f"{HERE}.place_order"],
        ["behavior", f"{HERE}.log_message"],
        ["behavior", f"{HERE}.transaction"],
        ["on", "error", f"{HERE}.DomainError", "->", f"{HERE}.to_typed_error"],
    ]
    # Columns line up: every role starts where the header's ROLE does.
    role_column = lines[0].index("ROLE")
    assert all(line[role_column:].split()[0] in {"handler", "behavior", "on"} for line in lines[1:])
    assert text.endswith("\n")


def test_describe_of_an_empty_registry_is_empty() -> None:
    mediator = Registry().build()

    assert mediator.describe() == []
    assert mediator.describe_text().splitlines()[1:] == []
