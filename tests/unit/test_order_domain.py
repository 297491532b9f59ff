from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from domain.customers import Customer
from domain.errors import InvalidTransition, OutOfStock, ValidationFailed
from domain.orders import (
    TRANSITIONS,
    Address,
    Order,
    OrderCancelled,
    OrderPlaced,
    OrderStatus,
    Wanted,
)
from domain.products import Product, StockReleased, StockReserved

ADDRESS = Address(street="1 Main St", city="Springfield", postal_code="12345", country="US")


def product(
    product_id: str, stock: int = 10, price: str = "2.50", currency: str = "USD"
) -> Product:
    created = Product.create(
        product_id,
        sku=f"SKU-{product_id}",
        name=f"Product {product_id}",
        description="",
        price=Decimal(price),
        currency=currency,
        stock=stock,
    )
    created.mark_stored()
    return created


def customer() -> Customer:
    registered = Customer.register("c1", name="Ada", email=" Ada@Example.com ")
    registered.mark_stored()
    return registered


def place(*wanted: Wanted, address: Address = ADDRESS) -> Order:
    return Order.place("o1", customer=customer(), wanted=wanted, shipping_address=address)


def test_placing_copies_prices_and_reserves_stock() -> None:
    a, b = product("a", stock=5, price="2.50"), product("b", stock=1, price="10")
    order = place(Wanted(a, 2), Wanted(b, 1))
    assert order.total == Decimal("15.00")
    assert (a.stock, b.stock) == (3, 0)
    placed = order.pending_events[0]
    assert isinstance(placed, OrderPlaced)
    assert (placed.customer_email, placed.total, placed.currency) == (
        "ada@example.com",
        Decimal("15.00"),
        "USD",
    )
    assert [(line.product_name, line.unit_price, line.quantity) for line in placed.lines] == [
        ("Product a", Decimal("2.50"), 2),
        ("Product b", Decimal("10.00"), 1),
    ]
    assert a.pending_events[-1] == StockReserved("a", "o1", 2, 3)


def test_a_shortfall_names_the_product_and_what_is_available() -> None:
    with pytest.raises(OutOfStock) as shortfall:
        place(Wanted(product("a", stock=5), 2), Wanted(product("b", stock=1), 3))
    assert (shortfall.value.product_id, shortfall.value.requested, shortfall.value.available) == (
        "b",
        3,
        1,
    )


@pytest.mark.parametrize(
    ("wanted", "paths"),
    [
        ([], {"lines"}),
        ([Wanted(product(str(n)), 1) for n in range(51)], {"lines"}),
        ([Wanted(product("a"), 0)], {"lines.0.quantity"}),
        ([Wanted(product("a"), 1001)], {"lines.0.quantity"}),
        ([Wanted(product("a"), 1), Wanted(product("a"), 1)], {"lines.1.product_id"}),
        ([Wanted(product("a"), 1), Wanted(product("b", currency="EUR"), 1)], {"lines"}),
        # A total the read models could not add up: a price near the cap, a thousand times.
        ([Wanted(product("a", price="999999999999"), 1000)], {"lines"}),
    ],
)
def test_invalid_orders_are_refused_with_every_reason(
    wanted: list[Wanted], paths: set[str]
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        place(*wanted)
    assert {".".join(i.path) for i in refused.value.issues} == paths
    assert all(w.product.stock == 10 for w in wanted)


def test_a_deleted_product_cannot_be_ordered() -> None:
    gone = product("a")
    gone.delete()
    with pytest.raises(ValidationFailed) as refused:
        place(Wanted(gone, 1))
    assert refused.value.issues[0].path == ("lines", "0", "product_id")


def test_an_address_needs_its_parts() -> None:
    with pytest.raises(ValidationFailed) as refused:
        place(Wanted(product("a"), 1), address=Address("", " ", "", ""))
    assert {".".join(i.path) for i in refused.value.issues} == {
        "shipping_address.street",
        "shipping_address.city",
        "shipping_address.postal_code",
        "shipping_address.country",
    }


@pytest.mark.parametrize(
    ("field", "path", "longest"),
    [
        ("street", "street", 200),
        ("city", "city", 100),
        ("state", "state", 100),
        ("postal_code", "postal_code", 20),
        ("country", "country", 2),
    ],
)
def test_each_address_part_is_bounded(field: str, path: str, longest: int) -> None:
    fits = dataclasses.replace(ADDRESS, **{field: "A" * longest})
    assert place(Wanted(product("a"), 1), address=fits).shipping_address == fits
    too_long = dataclasses.replace(ADDRESS, **{field: "A" * (longest + 1)})
    with pytest.raises(ValidationFailed) as refused:
        place(Wanted(product("a"), 1), address=too_long)
    assert [i.path for i in refused.value.issues] == [("shipping_address", path)]


def test_a_cancellation_reason_is_bounded_and_a_refusal_changes_nothing() -> None:
    stocked = product("a", stock=5)
    order = place(Wanted(stocked, 2))
    with pytest.raises(ValidationFailed) as refused:
        order.cancel("x" * 501, {"a": stocked})
    assert [i.path for i in refused.value.issues] == [("reason",)]
    assert (order.status, stocked.stock) == (OrderStatus.PENDING, 3)
    order.cancel("x" * 500, {"a": stocked})
    assert order.status is OrderStatus.CANCELLED


MOVES = {
    OrderStatus.CONFIRMED: lambda order, products: order.confirm(),
    OrderStatus.SHIPPED: lambda order, products: order.ship(),
    OrderStatus.DELIVERED: lambda order, products: order.deliver(),
    OrderStatus.CANCELLED: lambda order, products: order.cancel("changed my mind", products),
}
ALLOWED = {
    (OrderStatus.PENDING, OrderStatus.CONFIRMED),
    (OrderStatus.PENDING, OrderStatus.CANCELLED),
    (OrderStatus.CONFIRMED, OrderStatus.SHIPPED),
    (OrderStatus.CONFIRMED, OrderStatus.CANCELLED),
    (OrderStatus.SHIPPED, OrderStatus.DELIVERED),
}
KNOWN = {OrderStatus.PENDING, *MOVES}
"""The statuses this table knows; a status added later has its own tests, beside its move."""


def test_the_table_matches_the_rules() -> None:
    rules = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}
    assert {(a, b) for a, b in rules if a in KNOWN and b in KNOWN} == ALLOWED


def in_status(status: OrderStatus) -> tuple[Order, dict[str, Product]]:
    """A placed order as the repository would load it in `status` (stock still reserved)."""
    stocked = product("a", stock=10)
    placed = place(Wanted(stocked, 4))
    order = Order(
        placed.id,
        customer_id=placed.customer_id,
        lines=placed.lines,
        currency=placed.currency,
        shipping_address=placed.shipping_address,
        special_instructions=placed.special_instructions,
        status=status,
        version=1,
    )
    return order, {"a": stocked}


@pytest.mark.parametrize("start", list(OrderStatus))
@pytest.mark.parametrize("target", list(MOVES))
def test_every_transition_allowed_or_refused(start: OrderStatus, target: OrderStatus) -> None:
    order, products = in_status(start)
    version, events = order.version, len(order.pending_events)
    if target in TRANSITIONS[start]:
        MOVES[target](order, products)
        assert order.status is target
        assert order.version == version + 1
    else:
        with pytest.raises(InvalidTransition) as refused:
            MOVES[target](order, products)
        assert (refused.value.current, refused.value.wanted) == (start.value, target.value)
        assert (order.status, order.version, len(order.pending_events)) == (start, version, events)


def test_cancelling_gives_the_stock_back() -> None:
    a, b = product("a", stock=5), product("b", stock=5)
    order = place(Wanted(a, 2), Wanted(b, 5))
    order.cancel("duplicate", {"a": a, "b": b})
    assert (a.stock, b.stock) == (5, 5)
    assert order.pending_events[-1] == OrderCancelled(
        "o1", "c1", Decimal("17.50"), "USD", reason="duplicate"
    )
    assert b.pending_events[-1] == StockReleased("b", "o1", 5, 5)


@pytest.mark.parametrize(
    ("name", "email", "paths"),
    [("", "a@b.co", {"name"}), ("Ada", "nope", {"email"}), (" ", "x", {"name", "email"})],
)
def test_customer_registration_checks_name_and_email(
    name: str, email: str, paths: set[str]
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        Customer.register("c1", name=name, email=email)
    assert {".".join(i.path) for i in refused.value.issues} == paths
