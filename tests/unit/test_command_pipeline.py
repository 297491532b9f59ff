"""The service's own pipeline, as bootstrap builds it, over the in-memory store: a keyed
retry, a write the read models are slow to show, a handler that fails halfway, and a
concurrent write that lost the race for a key."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from domain.errors import NotFound, OutOfStock, ValidationFailed
from domain.orders import Address
from domain.products import ProductCreated, ProductRestocked
from handlers.customers import RegisterCustomer
from handlers.idempotency import Replayed
from handlers.orders import CancelOrder, LineRequest, PlaceOrder
from handlers.pipeline import ReadModelLagging
from handlers.products import CreateProduct, RestockProduct
from mediator import Mediator
from tests.unit.fakes import FakeStore, as_staff, fake_mediator


@pytest.fixture
async def mediator(store: FakeStore) -> Mediator:
    built = fake_mediator(store)
    await built.send(RegisterCustomer(name="Ada", email="ada@example.com"))
    await built.send(CreateProduct(sku="A", name="Anvil", price=Decimal(5), stock=3), as_staff())
    return built


async def test_a_keyed_retry_gets_the_first_outcome_and_writes_nothing(
    mediator: Mediator, store: FakeStore
) -> None:
    first = await mediator.send(RestockProduct("p1", 5, idempotency_key="k1"), as_staff())
    events = list(store.events)

    again = await mediator.send(RestockProduct("p1", 5, idempotency_key="k1"), as_staff())

    assert isinstance(again, Replayed)
    assert (again.entity_id, again.version, again.position) == (
        first.entity_id,
        first.version,
        first.position,
    )
    assert store.events == events
    assert store.products["p1"].stock == 8


async def test_a_key_reused_for_other_input_is_refused(
    mediator: Mediator, store: FakeStore
) -> None:
    await mediator.send(RestockProduct("p1", 5, idempotency_key="k1"), as_staff())

    with pytest.raises(ValidationFailed) as refused:
        await mediator.send(RestockProduct("p1", 6, idempotency_key="k1"), as_staff())

    assert [issue.path for issue in refused.value.issues] == [("idempotency_key",)]
    assert store.products["p1"].stock == 8


async def test_concurrent_first_attempts_with_one_key_write_once(
    mediator: Mediator, store: FakeStore
) -> None:
    results = await asyncio.gather(
        *(
            mediator.send(RestockProduct("p1", 5, idempotency_key="k1"), as_staff())
            for _ in range(5)
        )
    )

    assert {(r.entity_id, r.version) for r in results} == {("p1", 2)}
    assert [type(e) for _, _, e in store.events].count(ProductRestocked) == 1
    assert store.products["p1"].stock == 8


async def test_a_write_the_read_models_do_not_show_in_time_is_kept_and_said_so(
    mediator: Mediator, store: FakeStore
) -> None:
    store.read_models_lag = True

    with pytest.raises(ReadModelLagging) as lagging:
        await mediator.send(CreateProduct(sku="B", name="Bolt", price=Decimal(1)), as_staff())

    assert lagging.value.written is not None
    assert lagging.value.written.entity_id == "p2"
    assert store.products["p2"].name == "Bolt"
    assert type(store.events[-1][2]) is ProductCreated


async def test_a_handler_failing_halfway_leaves_nothing(
    mediator: Mediator, store: FakeStore
) -> None:
    """Placing reserves line by line; the second line's shortfall undoes the first's."""
    await mediator.send(CreateProduct(sku="B", name="Bolt", price=Decimal(1), stock=1), as_staff())
    events, commits = list(store.events), store.commits
    address = Address(street="1 Main St", city="Springfield", postal_code="1", country="US")

    with pytest.raises(OutOfStock):
        await mediator.send(
            PlaceOrder(
                customer_id="c1",
                lines=(LineRequest("p1", 2), LineRequest("p2", 5)),
                shipping_address=address,
            ),
            as_staff(),
        )

    assert (store.events, store.commits) == (events, commits)
    assert (store.products["p1"].stock, store.products["p2"].stock) == (3, 1)
    assert not store.orders
    with pytest.raises(NotFound):
        await mediator.send(CancelOrder("o1"), as_staff())
