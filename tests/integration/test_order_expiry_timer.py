"""The pending-order timer over a real database, its clock in the test's hand: the due rows
the reaction keeps, the claims that let one timer of several send a cancel, a crash between
the cancel and its record, an order confirmed first, and a failing cancel tried again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from domain.orders import Address, OrderCancelled, OrderConfirmed, OrderPlaced
from handlers.access import Identity, Role
from handlers.customers import RegisterCustomer
from handlers.orders import CancelOrder, ConfirmOrder, LineRequest, PlaceOrder
from handlers.orders.expiry import (
    CANCELLED,
    CLAIM_LEASE,
    PendingOrderTimer,
    cancel_expired,
    keep_due_times,
)
from handlers.products import CreateProduct
from handlers.reactions import Committed, committed
from mediator import Context, Mediator, Registry
from orderdesk.bootstrap import Services, bootstrap
from orderdesk.settings import Settings
from persistence.event_log import StoredEvent
from persistence.order_expiries import (
    DueOrder,
    Expiry,
    OrderFate,
    claim_due,
    expiry_of,
    order_fate,
)
from persistence.tables import event_log, order_expiries, products
from tests.databases import postgres_database_url, sqlite_settings
from tests.graphql_client import TEST_SECRET

TTL = 60.0
POLL = 0.5
ADDRESS = Address(street="1 Main St", city="Springfield", postal_code="12345", country="US")
STAFF = Identity("staff-1", Role.STAFF)


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now

    def passes(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@asynccontextmanager
async def database_settings(database: str, tmp_path: Path) -> AsyncIterator[Settings]:
    if database == "sqlite":
        yield sqlite_settings(tmp_path, query_cache=False)
        return
    async with postgres_database_url() as url:
        yield Settings(database_url=url, jwt_secret=SecretStr(TEST_SECRET), query_cache=False)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def services(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Services]:
    # Orders do not expire in this app: the test delivers the events and runs the timers.
    async with database_settings(request.param, tmp_path) as settings:
        started = bootstrap(settings)
        await started.start()
        try:
            yield started
        finally:
            await started.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@dataclass
class Shop:
    services: Services
    clock: Clock
    customer: str = ""
    product: str = ""

    @property
    def mediator(self) -> Mediator:
        return self.services.mediator

    def timer(self, name: str, mediator: Mediator | None = None) -> PendingOrderTimer:
        return PendingOrderTimer(
            mediator or self.mediator,
            engine=self.services.read_model_engine,
            log_engine=self.services.log_engine,
            clock=self.clock,
            poll_interval=POLL,
            claimer=name,
        )

    async def place(self, request: str = "req-1") -> str:
        command = PlaceOrder(lines=(LineRequest(self.product, 2),), shipping_address=ADDRESS)
        ctx = Context(correlation_id=request, identity=Identity(self.customer, Role.CUSTOMER))
        return (await self.mediator.send(command, ctx)).entity_id

    async def events(self, order_id: str) -> list[StoredEvent]:
        async with self.services.log_engine.connect() as connection:
            stored = await self.services.log.read(connection, after=0, limit=10_000)
        return [event for event in stored if event.stream_id == order_id]

    async def deliver(self, order_id: str, event_type: type[Any]) -> None:
        """Hand the order's event of `event_type` to the reaction, as the reactor does."""
        [stored] = [e for e in await self.events(order_id) if e.event_type == event_type.__name__]
        notification: Committed[Any] = committed(event_type)(
            stored.event,
            stored.event_id,
            stored.position,
            stored.stream_type,
            stored.stream_id,
            stored.stream_version,
            stored.occurred_at,
            stored.correlation_id,
            stored.causation_id,
        )
        await keep_due_times(
            notification,
            Context(),
            ttl=TTL,
            engine=self.services.read_model_engine,
            clock=self.clock,
        )

    async def expiry(self, order_id: str) -> Expiry:
        async with self.services.read_model_engine.connect() as connection:
            found = await expiry_of(connection, order_id)
        assert found is not None, f"order {order_id} has no due row"
        return found

    async def cancels(self, order_id: str) -> list[StoredEvent]:
        return [e for e in await self.events(order_id) if isinstance(e.event, OrderCancelled)]

    async def fate(self, due: DueOrder) -> OrderFate:
        async with self.services.log_engine.connect() as connection:
            return await order_fate(
                connection, due.order_id, cause=due.placed_event_id, cancel_type="OrderCancelled"
            )

    async def status(self, order_id: str) -> str:
        async with self.services.log_engine.connect() as connection:
            fate = await order_fate(connection, order_id, cause="", cancel_type="OrderCancelled")
        assert fate.status is not None
        return fate.status

    async def stock(self) -> int:
        async with self.services.write_engine.connect() as connection:
            return int(
                await connection.scalar(
                    select(products.c.stock).where(products.c.id == self.product)
                )
                or 0
            )


@pytest.fixture
async def shop(services: Services, clock: Clock) -> Shop:
    made = Shop(services, clock)
    made.customer = (
        await services.mediator.send(RegisterCustomer(name="Ada", email="ada@example.com"))
    ).entity_id
    created = CreateProduct(sku="ANVIL", name="Anvil", price=Decimal(5), stock=10)
    made.product = (await services.mediator.send(created, Context(identity=STAFF))).entity_id
    return made


async def placed_and_due(shop: Shop, request: str = "req-1") -> str:
    order_id = await shop.place(request)
    await shop.deliver(order_id, OrderPlaced)
    return order_id


# ---------------------------------------------------------------- the due rows


async def test_an_order_placed_gets_one_due_row_however_often_it_is_delivered(
    shop: Shop,
) -> None:
    order_id = await placed_and_due(shop)
    await shop.deliver(order_id, OrderPlaced)  # a redelivery after a crash
    [placed] = [e for e in await shop.events(order_id) if e.event_type == "OrderPlaced"]
    expiry = await shop.expiry(order_id)
    assert expiry.due == DueOrder(
        order_id,
        placed.occurred_at + timedelta(seconds=TTL),
        1,
        "req-1",
        placed.event_id,
        0,
    )
    assert (expiry.outcome, expiry.settled_at, expiry.claimed_by) == (None, None, None)
    async with shop.services.read_model_engine.connect() as connection:
        rows = await connection.scalar(select(func.count()).select_from(order_expiries))
    assert rows == 1


# ---------------------------------------------------------------- the timers


async def test_nothing_is_sent_before_the_due_time_and_one_timer_of_two_sends_it(
    shop: Shop,
) -> None:
    orders = [await placed_and_due(shop, f"req-{n}") for n in range(3)]
    first, second = shop.timer("first"), shop.timer("second")
    shop.clock.passes(TTL - 1)
    assert await first.expire_due() == 0
    assert await shop.stock() == 4
    shop.clock.passes(2)
    claimed = await asyncio.gather(first.expire_due(), second.expire_due())
    assert sum(claimed) == 3
    assert await first.expire_due() == await second.expire_due() == 0
    assert await shop.stock() == 10
    for n, order_id in enumerate(orders):
        assert await shop.status(order_id) == "CANCELLED"
        [cancel] = await shop.cancels(order_id)
        assert isinstance(cancel.event, OrderCancelled)
        assert cancel.event.reason == "expired"
        [placed] = [e for e in await shop.events(order_id) if e.event_type == "OrderPlaced"]
        assert (cancel.correlation_id, cancel.causation_id) == (f"req-{n}", placed.event_id)
        assert cancel.command == "CancelOrder"
        expiry = await shop.expiry(order_id)
        assert expiry.outcome == CANCELLED
        assert expiry.settled_at == shop.clock.now
        assert expiry.claimed_by in ("first", "second")
        assert expiry.claimed_until is None


async def test_a_crash_between_the_cancel_and_its_record_cancels_once(shop: Shop) -> None:
    order_id = await placed_and_due(shop)
    shop.clock.passes(TTL + 1)
    # A timer claims the row and sends the cancel, then its process dies: nothing recorded.
    async with shop.services.read_model_engine.begin() as connection:
        [due] = await claim_due(
            connection,
            now=shop.clock.now,
            until=shop.clock.now + CLAIM_LEASE,
            claimer="died",
            limit=10,
        )
    assert (await cancel_expired(shop.mediator, due, fate=shop.fate)).outcome == CANCELLED
    assert (await shop.expiry(order_id)).outcome is None

    survivor = shop.timer("survivor")
    assert await survivor.expire_due() == 0  # the dead one's lease still holds
    shop.clock.passes(CLAIM_LEASE.total_seconds() + 1)
    assert await survivor.expire_due() == 1
    expiry = await shop.expiry(order_id)
    # Its cancel refused (the version moved), and the log says the cancel was the timer's.
    assert (expiry.outcome, expiry.claimed_by) == (CANCELLED, "survivor")
    assert len(await shop.cancels(order_id)) == 1
    assert await shop.stock() == 10


async def test_an_order_confirmed_first_is_left_alone(shop: Shop) -> None:
    order_id = await placed_and_due(shop)
    await shop.mediator.send(ConfirmOrder(order_id), Context(identity=STAFF))
    shop.clock.passes(TTL + 1)
    # The confirmation's event has not reached the reaction: the timer finds out itself.
    assert await shop.timer("first").expire_due() == 1
    assert (await shop.expiry(order_id)).outcome == "left alone: confirmed"
    assert await shop.status(order_id) == "CONFIRMED"
    assert await shop.cancels(order_id) == []
    assert await shop.stock() == 8


async def test_the_reaction_settles_the_row_of_an_order_that_moved_on(shop: Shop) -> None:
    confirmed = await placed_and_due(shop)
    await shop.mediator.send(ConfirmOrder(confirmed), Context(identity=STAFF))
    await shop.deliver(confirmed, OrderConfirmed)
    withdrawn = await placed_and_due(shop, "req-2")
    customer = Context(identity=Identity(shop.customer, Role.CUSTOMER))
    await shop.mediator.send(CancelOrder(withdrawn, reason="changed my mind"), customer)
    await shop.deliver(withdrawn, OrderCancelled)
    assert (await shop.expiry(confirmed)).outcome == "left alone: confirmed"
    assert (await shop.expiry(withdrawn)).outcome == "left alone: cancelled"
    shop.clock.passes(TTL + 1)
    assert await shop.timer("first").expire_due() == 0


async def test_the_reaction_knows_the_timers_own_cancel(shop: Shop) -> None:
    order_id = await placed_and_due(shop)
    shop.clock.passes(TTL + 1)
    async with shop.services.read_model_engine.begin() as connection:
        [due] = await claim_due(
            connection,
            now=shop.clock.now,
            until=shop.clock.now + CLAIM_LEASE,
            claimer="died",
            limit=10,
        )
    await cancel_expired(shop.mediator, due, fate=shop.fate)
    await shop.deliver(order_id, OrderCancelled)
    assert (await shop.expiry(order_id)).outcome == CANCELLED


async def test_a_failing_cancel_is_tried_again_later_and_later(shop: Shop) -> None:
    order_id = await placed_and_due(shop)
    registry = Registry()
    calls: list[str] = []

    async def unreachable(command: CancelOrder, ctx: Context) -> None:
        calls.append(command.order_id)
        raise ConnectionError("the database went away")

    registry.handle(CancelOrder, unreachable)
    failing = shop.timer("failing", registry.build())
    shop.clock.passes(TTL + 1)
    assert await failing.expire_due() == 1
    expiry = await shop.expiry(order_id)
    assert (expiry.due.attempts, expiry.outcome, expiry.claimed_until) == (1, None, None)
    assert expiry.last_error == "ConnectionError: the database went away"
    assert expiry.due.due_at == shop.clock.now + timedelta(seconds=POLL)
    assert await failing.expire_due() == 0  # not before its time
    shop.clock.passes(POLL)
    assert await failing.expire_due() == 1
    expiry = await shop.expiry(order_id)
    assert expiry.due.attempts == 2
    assert expiry.due.due_at == shop.clock.now + timedelta(seconds=2 * POLL)
    assert calls == [order_id, order_id]

    shop.clock.passes(2 * POLL)
    assert await shop.timer("working").expire_due() == 1
    expiry = await shop.expiry(order_id)
    assert (expiry.outcome, expiry.last_error) == (CANCELLED, None)
    assert await shop.stock() == 10


async def test_the_log_is_read_for_the_cancels_cause(shop: Shop) -> None:
    order_id = await placed_and_due(shop)
    async with shop.services.log_engine.connect() as connection:
        placed = await connection.scalar(
            select(event_log.c.event_id).where(
                event_log.c.stream_id == order_id, event_log.c.event_type == "OrderPlaced"
            )
        )
        fate = await order_fate(
            connection, order_id, cause=str(placed), cancel_type="OrderCancelled"
        )
    assert (fate.status, fate.cancelled_by) == ("PENDING", False)
