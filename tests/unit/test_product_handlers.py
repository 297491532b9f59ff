"""The product command handlers, driven through the real mediator over in-memory fakes."""

from __future__ import annotations

from decimal import Decimal
from functools import partial

import pytest

from domain.errors import NotFound, ValidationFailed, VersionConflict
from domain.products import ProductCreated, ProductRestocked
from handlers.products import (
    CreateProduct,
    DeleteProduct,
    RestockProduct,
    UpdateProduct,
    create_product,
    delete_product,
    restock_product,
    update_product,
)
from handlers.written import Written
from mediator import Context, Mediator, Registry
from persistence.unit_of_work import UnitOfWork
from tests.unit.fakes import FakeStore, FakeUnitOfWork


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def mediator(store: FakeStore) -> Mediator:
    def uow(correlation_id: str) -> UnitOfWork:
        return FakeUnitOfWork(store, correlation_id)

    ids = iter(f"p{n}" for n in range(1, 100))
    registry = Registry()
    registry.handle(CreateProduct, partial(create_product, uow=uow, new_id=lambda: next(ids)))
    registry.handle(UpdateProduct, partial(update_product, uow=uow))
    registry.handle(RestockProduct, partial(restock_product, uow=uow))
    registry.handle(DeleteProduct, partial(delete_product, uow=uow))
    return registry.build()


CREATE = CreateProduct(sku="ANV-1", name="Anvil", price=Decimal("19.50"), stock=3)


async def test_create_commits_the_product_and_its_event(
    mediator: Mediator, store: FakeStore
) -> None:
    written = await mediator.send(CREATE, Context())
    assert written == Written("p1", 1, 1)
    assert store.products["p1"].sku == "ANV-1"
    assert [type(e) for _, _, e in store.events] == [ProductCreated]


async def test_a_duplicate_sku_is_refused_and_writes_nothing(
    mediator: Mediator, store: FakeStore
) -> None:
    await mediator.send(CREATE)
    with pytest.raises(ValidationFailed) as refused:
        await mediator.send(CREATE)
    assert refused.value.issues[0].path == ("sku",)
    assert (len(store.products), len(store.events), store.commits) == (1, 1, 1)


async def test_invalid_input_writes_nothing(mediator: Mediator, store: FakeStore) -> None:
    with pytest.raises(ValidationFailed):
        await mediator.send(CreateProduct(sku="", name="", price=Decimal(-1)))
    assert (store.products, store.events, store.commits) == ({}, [], 0)


async def test_restock_with_the_current_version(mediator: Mediator, store: FakeStore) -> None:
    await mediator.send(CREATE)
    written = await mediator.send(RestockProduct("p1", 5, expected_version=1))
    assert written.version == 2
    assert store.products["p1"].stock == 8
    assert store.events[-1] == ("p1", 2, ProductRestocked("p1", 5, 8))


async def test_a_stale_version_is_a_conflict_and_writes_nothing(
    mediator: Mediator, store: FakeStore
) -> None:
    await mediator.send(CREATE)
    await mediator.send(UpdateProduct("p1", name="Big anvil"))
    with pytest.raises(VersionConflict) as conflict:
        await mediator.send(RestockProduct("p1", 5, expected_version=1))
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
        await mediator.send(command)
    assert store.events == []


async def test_deleted_products_are_not_found(mediator: Mediator, store: FakeStore) -> None:
    await mediator.send(CREATE)
    await mediator.send(DeleteProduct("p1"))
    with pytest.raises(NotFound):
        await mediator.send(RestockProduct("p1", 1))
    assert len(store.events) == 2
