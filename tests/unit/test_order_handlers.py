"""Order commands through the real mediator and pipeline over in-memory fakes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.errors import NotFound, OutOfStock, ValidationFailed, VersionConflict
from domain.orders import Address, OrderConfirmed, OrderPlaced, OrderStatus
from domain.products import StockReleased, StockReserved
from handlers.access import NotAuthorized
from handlers.customers import RegisterCustomer
from handlers.orders import (
    CancelOrder,
    ConfirmOrder,
    LineRequest,
    PlaceOrder,
    ShipOrder,
)
from handlers.products import CreateProduct
from mediator import Mediator
from tests.unit.fakes import FakeStore, as_customer, as_staff, fake_mediator

ADDRESS = Address(street="1 Main St", city="Springfield", postal_code="12345", country="US")


@pytest.fixture
async def mediator(store: FakeStore) -> Mediator:
    built = fake_mediator(store)
    await built.send(RegisterCustomer(name="Ada", email="ada@example.com"))  # c1
    await built.send(RegisterCustomer(name="Bob", email="bob@example.com"))  # c2
    await built.send(CreateProduct(sku="A", name="Anvil", price=Decimal(5), stock=3), as_staff())
    await built.send(CreateProduct(sku="B", name="Bolt", price=Decimal(1), stock=9), as_staff())
    return built


def order(*lines: tuple[str, int], customer_id: str = "c1") -> PlaceOrder:
    return PlaceOrder(
        customer_id=customer_id,
        lines=tuple(LineRequest(product, quantity) for product, quantity in lines),
        shipping_address=ADDRESS,
    )


async def test_a_customer_places_its_order_and_stock_is_reserved(
    mediator: Mediator, store: FakeStore
) -> None:
    written = await mediator.send(order(("p1", 2), ("p2", 3)), as_customer("c1"))
    assert written.entity_id == "o1"
    assert (store.products["p1"].stock, store.products["p2"].stock) == (1, 6)
    kinds = [type(event) for _, _, event in store.events[-3:]]
    assert kinds == [OrderPlaced, StockReserved, StockReserved]


async def test_a_shortfall_leaves_everything_as_it_was(
    mediator: Mediator, store: FakeStore
) -> None:
    before = len(store.events)
    with pytest.raises(OutOfStock) as shortfall:
        await mediator.send(order(("p2", 1), ("p1", 4)), as_customer("c1"))
    assert (shortfall.value.product_id, shortfall.value.available) == ("p1", 3)
    assert (store.products["p1"].stock, store.products["p2"].stock) == (3, 9)
    assert (len(store.events), store.orders) == (before, {})


async def test_declarative_rules_report_every_failure_with_its_path(
    mediator: Mediator, store: FakeStore
) -> None:
    bad = PlaceOrder(
        customer_id="c1",
        lines=(LineRequest("p1", 0), LineRequest("p2", 5000)),
        shipping_address=Address(street="", city="x", postal_code="1", country="usa"),
    )
    before = len(store.events)
    with pytest.raises(ValidationFailed) as refused:
        await mediator.send(bad, as_customer("c1"))
    assert {".".join(i.path) for i in refused.value.issues} == {
        "lines.0.quantity",
        "lines.1.quantity",
        "shipping_address.street",
        "shipping_address.country",
    }
    assert len(store.events) == before


async def test_unknown_products_are_named_by_line(mediator: Mediator) -> None:
    with pytest.raises(ValidationFailed) as refused:
        await mediator.send(order(("p1", 1), ("nope", 1)), as_customer("c1"))
    assert [i.path for i in refused.value.issues] == [("lines", "1", "product_id")]


@pytest.mark.parametrize("ctx", [None, as_customer("c2")])
async def test_only_the_customer_itself_or_staff_places_its_orders(
    mediator: Mediator, ctx: object
) -> None:
    with pytest.raises(NotAuthorized):
        await mediator.send(order(("p1", 1)), ctx)  # type: ignore[arg-type]
    placed = await mediator.send(order(("p1", 1)), as_staff())
    assert placed.entity_id == "o1"


async def test_staff_move_orders_and_customers_may_not(
    mediator: Mediator, store: FakeStore
) -> None:
    placed = await mediator.send(order(("p1", 1)), as_customer("c1"))
    with pytest.raises(NotAuthorized):
        await mediator.send(ConfirmOrder(placed.entity_id), as_customer("c1"))
    confirmed = await mediator.send(ConfirmOrder(placed.entity_id, 1), as_staff())
    assert confirmed.version == 2
    assert store.events[-1] == ("o1", 2, OrderConfirmed("o1"))
    with pytest.raises(VersionConflict):
        await mediator.send(ShipOrder(placed.entity_id, expected_version=1), as_staff())
    assert store.orders["o1"].status is OrderStatus.CONFIRMED


async def test_a_customer_cancels_its_own_order_and_stock_returns(
    mediator: Mediator, store: FakeStore
) -> None:
    placed = await mediator.send(order(("p1", 3)), as_customer("c1"))
    with pytest.raises(NotFound):
        await mediator.send(CancelOrder(placed.entity_id), as_customer("c2"))
    await mediator.send(CancelOrder(placed.entity_id, "too slow"), as_customer("c1"))
    assert store.orders["o1"].status is OrderStatus.CANCELLED
    assert store.products["p1"].stock == 3
    assert store.events[-1][2] == StockReleased("p1", "o1", 3, 3)
