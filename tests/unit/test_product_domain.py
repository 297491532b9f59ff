from __future__ import annotations

from decimal import Decimal

import pytest

from domain.errors import NotFound, ValidationFailed, VersionConflict
from domain.products import (
    Product,
    ProductCreated,
    ProductDeleted,
    ProductRestocked,
    ProductUpdated,
)


def anvil(**overrides: object) -> Product:
    fields: dict[str, object] = {
        "sku": "ANV-1",
        "name": "Anvil",
        "description": "Heavy.",
        "price": Decimal("19.5"),
        "currency": "USD",
        "stock": 3,
    }
    fields.update(overrides)
    return Product.create("p1", **fields)  # type: ignore[arg-type]


def paths(error: ValidationFailed) -> set[str]:
    return {".".join(issue.path) for issue in error.issues}


def test_create_records_the_event_and_starts_at_version_one() -> None:
    product = anvil()
    assert product.version == 1
    assert product.pending_events == [
        ProductCreated("p1", "ANV-1", "Anvil", "Heavy.", Decimal("19.50"), "USD", 3)
    ]


def test_create_reports_every_invalid_field_at_once() -> None:
    with pytest.raises(ValidationFailed) as refused:
        anvil(sku="no spaces", name="  ", price=Decimal("-1"), currency="usd", stock=-2)
    assert paths(refused.value) == {"sku", "name", "price", "currency", "stock"}


@pytest.mark.parametrize(
    ("price", "accepted"),
    [
        (Decimal(0), True),
        (Decimal("0.0001"), True),
        (Decimal("0.00001"), False),
        (Decimal("999999999999.99"), True),
        (Decimal("1000000000000"), False),
        (Decimal("NaN"), False),
        (Decimal("Infinity"), False),
        (Decimal("-0.01"), False),
    ],
)
def test_price_bounds(price: Decimal, accepted: bool) -> None:
    if accepted:
        assert anvil(price=price).price.amount == price
    else:
        with pytest.raises(ValidationFailed) as refused:
            anvil(price=price)
        assert paths(refused.value) == {"price"}


def test_update_changes_only_given_fields_and_bumps_version() -> None:
    product = anvil()
    product.update(price=Decimal("21"))
    assert (product.name, product.price.amount, product.version) == ("Anvil", Decimal("21.00"), 2)
    assert product.pending_events[-1] == ProductUpdated(
        "p1", "Anvil", "Heavy.", Decimal("21.00"), "USD"
    )


def test_update_refuses_invalid_values_and_changes_nothing() -> None:
    product = anvil()
    with pytest.raises(ValidationFailed) as refused:
        product.update(name="", price=Decimal("-5"))
    assert paths(refused.value) == {"name", "price"}
    assert (product.name, product.version, len(product.pending_events)) == ("Anvil", 1, 1)


def test_restock_adds_and_records_the_resulting_stock() -> None:
    product = anvil()
    product.restock(7)
    assert product.stock == 10
    assert product.pending_events[-1] == ProductRestocked("p1", 7, 10)


@pytest.mark.parametrize("quantity", [0, -1, 2_000_000_000])
def test_restock_refuses_non_positive_or_overflowing_quantities(quantity: int) -> None:
    product = anvil()
    with pytest.raises(ValidationFailed):
        product.restock(quantity)
    assert product.stock == 3


def test_a_deleted_product_refuses_every_change() -> None:
    product = anvil()
    product.delete()
    assert product.pending_events[-1] == ProductDeleted("p1")
    for change in (product.delete, lambda: product.restock(1), lambda: product.update(name="x")):
        with pytest.raises(NotFound):
            change()
    assert product.version == 2


def test_check_version_refuses_a_stale_expectation() -> None:
    product = anvil()
    product.check_version(None)
    product.check_version(1)
    with pytest.raises(VersionConflict) as conflict:
        product.check_version(0)
    assert (conflict.value.expected, conflict.value.actual) == (0, 1)
