"""Inconsistent registrations are start-up errors, raised by handle() or build()."""

import asyncio
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from mediator import (
    Command,
    Concurrent,
    ConfigurationError,
    Context,
    MediatorError,
    Notification,
    Query,
    Registry,
    StreamRequest,
)

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class PlaceOrder(Command[str]):
    customer_id: str


@dataclass(frozen=True, slots=True)
class GetOrder(Query[str]):
    order_id: str


@dataclass(frozen=True, slots=True)
class CancelOrder(Command[None]):
    order_id: str


@dataclass(frozen=True, slots=True)
class OrderPlaced(Notification):
    order_id: str


@dataclass(frozen=True, slots=True)
class WatchOrders(StreamRequest[str]):
    pass


async def place_order(command: PlaceOrder, ctx: Context) -> str:
    return "o1"


async def place_order_again(command: PlaceOrder, ctx: Context) -> str:
    return "o2"


async def get_order(query: GetOrder, ctx: Context) -> str:
    return query.order_id


async def on_order_placed(note: OrderPlaced, ctx: Context) -> None:
    return None


def test_a_second_handler_for_a_type_is_refused_naming_both_handlers() -> None:
    registry = Registry()
    registry.handle(PlaceOrder, place_order)

    with pytest.raises(ConfigurationError) as caught:
        registry.handle(PlaceOrder, place_order_again)

    message = str(caught.value)
    assert "test_mediator_startup.PlaceOrder" in message
    assert "test_mediator_startup.place_order;" in message
    assert "test_mediator_startup.place_order_again" in message
    assert isinstance(caught.value, MediatorError)


def test_a_second_stream_handler_for_a_type_is_refused_naming_both() -> None:
    async def first(request: WatchOrders, ctx: Context) -> Any:
        yield "a"

    async def second(request: WatchOrders, ctx: Context) -> Any:
        yield "b"

    registry = Registry()
    registry.stream(WatchOrders, first)

    with pytest.raises(ConfigurationError, match=r"WatchOrders.*first.*second"):
        registry.stream(WatchOrders, second)


def test_subscribing_one_handler_twice_to_one_type_is_refused() -> None:
    registry = Registry()
    registry.subscribe(OrderPlaced, on_order_placed)

    with pytest.raises(ConfigurationError, match=r"on_order_placed.*OrderPlaced"):
        registry.subscribe(OrderPlaced, on_order_placed)


def test_build_names_every_expected_type_without_handler() -> None:
    registry = Registry()
    registry.handle(GetOrder, get_order)

    with pytest.raises(ConfigurationError) as caught:
        registry.build(expect=[PlaceOrder, GetOrder, CancelOrder, OrderPlaced, WatchOrders])

    message = str(caught.value)
    for missing in ("PlaceOrder", "CancelOrder", "OrderPlaced", "WatchOrders"):
        assert f"test_mediator_startup.{missing}" in message
    assert "GetOrder" not in message


def test_build_accepts_expected_types_served_by_a_base_handler() -> None:
    @dataclass(frozen=True, slots=True)
    class PlaceRushOrder(PlaceOrder):
        pass

    registry = Registry()
    registry.handle(PlaceOrder, place_order)
    registry.subscribe(OrderPlaced, on_order_placed)

    mediator = registry.build(expect=[PlaceOrder, PlaceRushOrder, OrderPlaced])

    assert [route.message_type for route in mediator.describe()] == [PlaceOrder, OrderPlaced]


def test_build_require_checks_every_concrete_subclass_of_a_base() -> None:
    class CatalogCommand(Command[R]):
        """A base still generic in its result: not itself a message."""

        __slots__ = ()

    class AbstractCatalogCommand(Command[None], ABC):
        __slots__ = ()

        @abstractmethod
        def sku(self) -> str: ...

    class ReversibleCatalogCommand(CatalogCommand[R]):
        """Still generic below the required base: not a message either."""

        __slots__ = ()

    @dataclass(frozen=True, slots=True)
    class CreateProduct(ReversibleCatalogCommand[str]):
        sku: str

    @dataclass(frozen=True, slots=True)
    class DeleteProduct(CatalogCommand[None]):
        sku: str

    @dataclass(frozen=True, slots=True)
    class RestockProduct(CatalogCommand[None]):
        sku: str

    async def create(command: CreateProduct, ctx: Context) -> str:
        return command.sku

    registry = Registry()
    registry.handle(CreateProduct, create)

    with pytest.raises(ConfigurationError) as caught:
        registry.build(require=[CatalogCommand, AbstractCatalogCommand])

    message = str(caught.value)
    assert "DeleteProduct" in message
    assert "RestockProduct" in message
    assert "CreateProduct" not in message
    assert "CatalogCommand" not in message  # neither the bases nor generic subclasses


def test_build_require_passes_when_every_subclass_has_a_handler() -> None:
    class ShippingQuery(Query[R]):
        __slots__ = ()

    @dataclass(frozen=True, slots=True)
    class GetShipment(ShippingQuery[str]):
        shipment_id: str

    async def get_shipment(query: GetShipment, ctx: Context) -> str:
        return query.shipment_id

    registry = Registry()
    registry.handle(GetShipment, get_shipment)

    # The slots dataclass left its pre-slots twin among ShippingQuery's subclasses (until a
    # garbage collection): it must not count as a second message without handler.
    mediator = registry.build(require=[ShippingQuery])

    assert mediator.describe()[0].message_type is GetShipment


def test_build_require_within_looks_only_at_the_named_packages() -> None:
    class LedgerCommand(Command[R]):
        __slots__ = ()

    @dataclass(frozen=True, slots=True)
    class PostEntry(LedgerCommand[None]):
        amount: int

    registry = Registry()
    here = PostEntry.__module__  # tests.unit.mediator.test_mediator_startup

    registry.build(require=[LedgerCommand], within=["handlers", "tests.unit.mediator.test_m"])
    with pytest.raises(ConfigurationError, match="PostEntry"):
        registry.build(require=[LedgerCommand], within=["handlers", here])
    with pytest.raises(ConfigurationError, match="PostEntry"):
        registry.build(require=[LedgerCommand], within=["tests.unit"])


@pytest.mark.parametrize(
    ("register", "fragment"),
    [
        (lambda r: r.handle(OrderPlaced, on_order_placed), "Request"),
        (lambda r: r.subscribe(PlaceOrder, place_order), "Notification"),
        (lambda r: r.stream(PlaceOrder, place_order), "StreamRequest"),
        (lambda r: r.handle(PlaceOrder, "not callable"), "not callable"),
        (lambda r: r.behavior(place_order, applies_to="Command"), "applies_to"),
    ],
)
def test_registering_the_wrong_kind_of_thing_is_refused(register: Any, fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        register(Registry())


def test_exception_handlers_may_not_swallow_cancellation() -> None:
    async def swallow(exc: BaseException, message: object, ctx: Context) -> None:
        return None

    registry = Registry()

    with pytest.raises(ConfigurationError, match="subclass of Exception"):
        registry.on_exception(asyncio.CancelledError, swallow)  # type: ignore[type-var]


def test_a_second_exception_handler_for_one_type_and_scope_is_refused() -> None:
    async def first(exc: KeyError, message: object, ctx: Context) -> str:
        return "first"

    async def second(exc: KeyError, message: object, ctx: Context) -> str:
        return "second"

    registry = Registry()
    registry.on_exception(KeyError, first, applies_to=Command)
    registry.on_exception(KeyError, second, applies_to=Query)  # another scope is fine

    with pytest.raises(ConfigurationError, match=r"KeyError.*Command.*first.*second"):
        registry.on_exception(KeyError, second, applies_to=Command)


def test_concurrent_needs_a_limit_of_at_least_one() -> None:
    with pytest.raises(ConfigurationError, match="limit"):
        Concurrent(limit=0)


async def test_registering_after_build_does_not_change_a_built_mediator() -> None:
    registry = Registry()
    registry.handle(PlaceOrder, place_order)
    mediator = registry.build()

    registry.handle(GetOrder, get_order)
    later = registry.build()

    assert [route.message_type for route in mediator.describe()] == [PlaceOrder]
    assert await later.send(GetOrder("o9")) == "o9"
