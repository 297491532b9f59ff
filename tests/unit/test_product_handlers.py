"""The product command handlers, driven through the real mediator over in-memory fakes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.errors import NotFound, ValidationFailed, VersionConflict
from domain.products import ProductCreated, ProductRestocked
from handlers.access import NotAuthorized
from handlers.products import CreateProduct, DeleteProduct, RestockProduct, UpdateProduct
from handlers.written import Written
from mediator import Context, Mediator
from tests.unit.fakes import FakeStore, as_customer, as_staff, fake_mediator


@pytest.fixture
def mediator(store: FakeStore) -> Mediator:
    return fake_mediator(store)


CREATE = CreateProduct(sku="ANV-1", name="Anvil", price=Decimal("19.50"), stock=3)


async def test_create_commits_the_product_and_its_event(
    mediator: Mediator, store: FakeStore
) -> None:
    written = await mediator.send(CREATE, as_staff())
    assert written == Written("p1", 1, 1, kind="Product")
    assert store.products["p1"].sku == "ANV-1"
    assert [type(e) for _, _, e in store.events] == [ProductCreated]


async def test_a_duplicate_sku_is_refused_and_writes_nothing(
    mediator: Mediator, store: FakeStore
) -> None:
    await mediator.send(CREATE, as_staff())
    with pytest.raises(ValidationFailed) as refused:
        await mediator.send(CREATE, as_staff())
    assert refused.value.issues[0].path == ("sku",)
    assert (len(store.products), len(store.events), store.commits) == (1, 1, 1)


async def test_invalid_input_writes_nothing(mediator: Mediator, store: FakeStore) -> None:
    with pytest.raises(ValidationFailed):
        await mediator.send(CreateProduct(sku="", name="", price=Decimal(-1)), as_staff())
    assert (store.products, store.events, store.commits) == ({}, [], 0)


async def test_restock_with_the_current_version(mediator: Mediator, store: FakeStore) -> None:
    await mediator.send(CREATE, as_staff())
    written = await mediator.send(RestockProduct("p1", 5, expected_version=1), as_staff())
    assert written.version == 2
    assert store.products["p1"].stock == 8
    assert store.events[-1] == ("p1", 2, ProductRestocked("p1", 5, 8))


async def test_a_stale_version_is_a_conflict_and_writes_nothing(
    mediator: Mediator, store: FakeStore
) -> None:
    await mediator.send(CREATE, as_staff())
    await mediator.send(UpdateProduct("p1", name="Big anvil"), as_staff())
    with pytest.raises(VersionConflict) as conflict:
        await mediator.send(RestockProduct("p1", 5, expected_version=1), as_staff())
    assert (conflict.value.expected, conflict.value.actual) == (1, 2)
    assert (store.products["p1"].stock, len(store.events)) == (3, 2)


@pytest.mark.parametrize(
    "command",
    [
        UpdateProduct("nope", name="x"),
        RestockProduct("nope", 1),
        DeleteProduct("nope"),
    ],
)
async def test_unknown_products_are_not_found(
    mediator: Mediator, store: FakeStore, command: UpdateProduct | RestockProduct | DeleteProduct
) -> None:
    with pytest.raises(NotFound):
        await mediator.send(command, as_staff())
    assert store.events == []


async def test_deleted_products_are_not_found(mediator: Mediator, store: FakeStore) -> None:
    await mediator.send(CREATE, as_staff())
    await mediator.send(DeleteProduct("p1"), as_staff())
    with pytest.raises(NotFound):
        await mediator.send(RestockProduct("p1", 1), as_staff())
    assert len(store.events) == 2


@pytest.mark.parametrize("ctx", [None, as_customer("c1")])
async def test_only_staff_manage_products(
    mediator: Mediator, store: FakeStore, ctx: Context | None
) -> None:
    with pytest.raises(NotAuthorized):
        await mediator.send(CREATE, ctx)
    assert store.events == []
