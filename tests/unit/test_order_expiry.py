"""Pending orders cancelled as expired: the cancel the timer sends, through the real mediator
over in-memory fakes, and the rules that tell what came of it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from domain.errors import InvalidTransition, NotFound, VersionConflict
from domain.orders import (
    Address,
    OrderCancelled,
    OrderConfirmed,
    OrderDelivered,
    OrderPlaced,
    OrderShipped,
    OrderStatus,
)
from handlers.customers import RegisterCustomer
from handlers.feature import Wiring
from handlers.orders import CancelOrder, ConfirmOrder, LineRequest, PlaceOrder
from handlers.orders.expiry import (
    CANCELLED,
    EXPIRED,
    HANDLER,
    MAX_RETRY_DELAY,
    NO_SUCH_ORDER,
    Attempt,
    PendingOrderTimer,
    cancel_expired,
    left_alone,
    outcome_of,
    pending_order_timer,
    retry_delay,
)
from handlers.pipeline import DatabaseUnavailable, ReadModelLagging
from handlers.products import CreateProduct
from handlers.reactions import committed
from mediator import Mediator
from orderdesk.settings import Settings
from persistence.database import create_engine
from persistence.order_expiries import DueOrder, OrderFate
from tests.unit.fakes import FakeStore, as_customer, as_staff, fake_mediator

CONFLICT = VersionConflict("Order", "o1", 1, 2)
ADDRESS = Address(street="1 Main St", city="Springfield", postal_code="12345", country="US")
PLACED_AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
REQUEST = "place-request-1"
PLACED_EVENT = "placed-event-1"


@pytest.fixture
async def mediator(store: FakeStore) -> Mediator:
    built = fake_mediator(store)
    await built.send(RegisterCustomer(name="Ada", email="ada@example.com"))  # c1
    await built.send(CreateProduct(sku="A", name="Anvil", price=Decimal(5), stock=3), as_staff())
    order = PlaceOrder(customer_id="c1", lines=(LineRequest("p1", 2),), shipping_address=ADDRESS)
    await built.send(order, as_customer("c1"))  # o1, at version 1
    return built


def due(order_id: str = "o1", *, version: int = 1) -> DueOrder:
    return DueOrder(order_id, PLACED_AT, version, REQUEST, PLACED_EVENT)


def fate_in(store: FakeStore) -> Callable[[DueOrder], Awaitable[OrderFate]]:
    """What the write side says of an order, from the fake store (as order_fate reads it
    from the database)."""

    async def fate(of: DueOrder) -> OrderFate:
        order = store.orders.get(of.order_id)
        ours = any(
            e.stream_id == of.order_id
            and isinstance(e.event, OrderCancelled)
            and e.causation_id == of.placed_event_id
            for e in store.log
        )
        return OrderFate(None if order is None else order.status.value, ours)

    return fate


async def expire(mediator: Mediator, store: FakeStore, of: DueOrder) -> Attempt:
    return await cancel_expired(mediator, of, fate=fate_in(store))


def cancels(store: FakeStore, order_id: str = "o1") -> list[OrderCancelled]:
    return [
        e.event
        for e in store.log
        if e.stream_id == order_id and isinstance(e.event, OrderCancelled)
    ]


# ---------------------------------------------------------------- the cancel it sends


async def test_a_due_order_is_cancelled_as_expired_and_its_stock_comes_back(
    mediator: Mediator, store: FakeStore
) -> None:
    assert store.products["p1"].stock == 1
    attempt = await expire(mediator, store, due())
    assert attempt == Attempt(CANCELLED, None)
    assert store.orders["o1"].status is OrderStatus.CANCELLED
    assert store.products["p1"].stock == 3
    [cancel] = [e for e in store.log if isinstance(e.event, OrderCancelled)]
    assert isinstance(cancel.event, OrderCancelled)
    assert cancel.event.reason == EXPIRED
    # Sent for the request that placed the order, and caused by its OrderPlaced event.
    assert (cancel.correlation_id, cancel.causation_id) == (REQUEST, PLACED_EVENT)
    assert cancel.command == "CancelOrder"


async def test_an_order_confirmed_first_is_left_alone(mediator: Mediator, store: FakeStore) -> None:
    await mediator.send(ConfirmOrder("o1"), as_staff())
    attempt = await expire(mediator, store, due())
    assert attempt.outcome == left_alone("CONFIRMED") == "left alone: confirmed"
    assert isinstance(attempt.error, VersionConflict)
    assert store.orders["o1"].status is OrderStatus.CONFIRMED
    assert cancels(store) == []
    assert store.products["p1"].stock == 1


async def test_an_order_its_customer_cancelled_first_is_left_alone(
    mediator: Mediator, store: FakeStore
) -> None:
    await mediator.send(CancelOrder("o1", reason="changed my mind"), as_customer("c1"))
    attempt = await expire(mediator, store, due())
    assert attempt.outcome == "left alone: cancelled"
    assert [c.reason for c in cancels(store)] == ["changed my mind"]
    assert store.products["p1"].stock == 3


async def test_a_second_attempt_after_a_crash_does_nothing_and_counts_as_cancelled(
    mediator: Mediator, store: FakeStore
) -> None:
    # The first cancel was committed, then the process stopped before recording it.
    assert (await expire(mediator, store, due())).outcome == CANCELLED
    again = await expire(mediator, store, due())
    assert again.outcome == CANCELLED
    assert isinstance(again.error, VersionConflict)
    assert len(cancels(store)) == 1
    assert store.products["p1"].stock == 3


async def test_an_order_that_does_not_exist_is_settled_not_retried(
    mediator: Mediator, store: FakeStore
) -> None:
    attempt = await expire(mediator, store, due("o404"))
    assert attempt.outcome == NO_SUCH_ORDER
    assert isinstance(attempt.error, NotFound)


async def test_a_fate_that_cannot_be_read_is_a_failure_to_try_again(
    mediator: Mediator, store: FakeStore
) -> None:
    await mediator.send(ConfirmOrder("o1"), as_staff())

    async def unreadable(_: DueOrder) -> OrderFate:
        raise ConnectionError("the database went away")

    attempt = await cancel_expired(mediator, due(), fate=unreadable)
    assert attempt.outcome is None
    assert isinstance(attempt.error, ConnectionError)


# ---------------------------------------------------------------- the outcome rules


@pytest.mark.parametrize(
    ("error", "fate", "outcome"),
    [
        (None, None, CANCELLED),
        # Committed; only the read models have not shown it yet.
        (ReadModelLagging("saved, not shown"), None, CANCELLED),
        (CONFLICT, OrderFate("CONFIRMED", False), "left alone: confirmed"),
        (CONFLICT, OrderFate("SHIPPED", False), "left alone: shipped"),
        (CONFLICT, OrderFate("CANCELLED", True), CANCELLED),
        (CONFLICT, OrderFate("CANCELLED", False), "left alone: cancelled"),
        (CONFLICT, OrderFate(None, False), NO_SUCH_ORDER),
        (
            InvalidTransition("Order", "o1", "DELIVERED", "CANCELLED"),
            OrderFate("DELIVERED", False),
            "left alone: delivered",
        ),
        (NotFound("Order", "o1"), None, NO_SUCH_ORDER),
        # Failures: tried again later.
        (CONFLICT, None, None),
        (DatabaseUnavailable("the database did not answer in time"), None, None),
        (RuntimeError("anything else"), None, None),
    ],
)  # fmt: skip
def test_what_came_of_an_attempt(
    error: BaseException | None, fate: OrderFate | None, outcome: str | None
) -> None:
    assert outcome_of(error, fate) == outcome


def test_failed_attempts_wait_longer_each_time_up_to_a_bound() -> None:
    delays = [retry_delay(attempts, first=1.0) for attempts in range(4)]
    assert delays == [1.0, 2.0, 4.0, 8.0]
    assert retry_delay(40, first=1.0) == retry_delay(10_000, first=1.0) == MAX_RETRY_DELAY


# ---------------------------------------------------------------- wiring


TRACKED = (OrderPlaced, OrderConfirmed, OrderShipped, OrderDelivered, OrderCancelled)


def test_the_due_times_are_kept_only_when_orders_expire() -> None:
    off = fake_mediator(FakeStore())
    on = fake_mediator(
        FakeStore(),
        Settings(database_url="sqlite+aiosqlite:///:memory:", pending_order_ttl="30m"),
    )
    for event_type in TRACKED:
        assert HANDLER not in off.subscribers(committed(event_type))
        # One handler for all five: its one checkpoint keeps an order's events in order.
        assert on.subscribers(committed(event_type)).count(HANDLER) == 1


async def test_the_worker_does_nothing_when_orders_do_not_expire(mediator: Mediator) -> None:
    engine = create_engine("sqlite+aiosqlite:///:memory:")
    try:
        wiring = Wiring(read_engine=engine, scan_engine=engine, effects_engine=engine)
        worker = pending_order_timer(wiring, mediator)
        assert not isinstance(worker, PendingOrderTimer)
        await worker.start()
        await worker.stop()
    finally:
        await engine.dispose()
