"""One contract for the ports commands write through (CommandStore, UnitOfWork and its
repositories), run against the in-memory store of the unit tests and the SQL store on SQLite
and on PostgreSQL, so that what a unit test sees is what the service does.

Each test reads back what was committed the same way on every backend: the log in order,
and aggregates through a fresh unit of work's repositories.

A write transaction on SQLite begins at once and holds the only write lock until it ends, so
no two units of work are open at the same time here. Where a contract is about a race, what
the loser did before its rival committed (a read, a look-up) is done in a unit of work of its
own, left before the rival commits; its write then comes in the next.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from domain.aggregate import Aggregate
from domain.customers import Customer, CustomerRegistered
from domain.errors import ValidationFailed, VersionConflict
from domain.orders import Address, Order, OrderLine, OrderPlaced, OrderStatus, Wanted
from domain.products import Product, ProductCreated, ProductRestocked, StockReserved
from orderdesk.bootstrap import bootstrap, utc_now
from orderdesk.settings import Settings
from persistence.customers import email_taken
from persistence.event_codec import UnknownEventType
from persistence.idempotency import IdempotencyClaim, KeyAlreadyUsed, StoredOutcome
from persistence.products import sku_taken
from persistence.unit_of_work import CommandStore, SqlCommandStore, UnitOfWork
from tests.databases import postgres_database_url, sqlite_url
from tests.unit.fakes import FakeStore

ADDRESS = Address(street="1 Main St", city="Springfield", postal_code="62701", country="US")


@dataclass(frozen=True, slots=True)
class Logged:
    """An event as the log holds it, whichever backend kept it."""

    position: int
    stream_id: str
    version: int
    event_type: str
    event: object
    correlation_id: str


@dataclass(frozen=True, slots=True)
class Backend:
    """A command store, and what was committed to it, read back without its internals."""

    store: CommandStore
    read_log: Callable[[], Awaitable[list[Logged]]]

    def work(self, claim: IdempotencyClaim | None = None) -> UnitOfWork:
        return self.store.unit_of_work(correlation_id="contract", claim=claim)

    async def commit(self, *aggregates: Aggregate) -> int:
        """Store new aggregates in one unit of work."""
        async with self.work() as work:
            for aggregate in aggregates:
                add(work, aggregate)
            return await work.commit()

    async def log(self) -> list[Logged]:
        return await self.read_log()

    async def events(self) -> list[tuple[str, int, str]]:
        return [(e.stream_id, e.version, e.event_type) for e in await self.read_log()]

    async def product(self, product_id: str) -> Product | None:
        async with self.work() as work:
            return await work.products.get(product_id)

    async def customer(self, customer_id: str) -> Customer | None:
        async with self.work() as work:
            return await work.customers.get(customer_id)

    async def order(self, order_id: str) -> Order | None:
        async with self.work() as work:
            return await work.orders.get(order_id)

    async def stored(self, aggregate: Aggregate) -> Aggregate | None:
        """The committed aggregate of this one's kind and id, if there is one."""
        readers = {"Product": self.product, "Customer": self.customer, "Order": self.order}
        return await readers[aggregate.kind](aggregate.id)


def add(work: UnitOfWork, aggregate: Aggregate) -> None:
    if isinstance(aggregate, Product):
        work.products.add(aggregate)
    elif isinstance(aggregate, Customer):
        work.customers.add(aggregate)
    elif isinstance(aggregate, Order):
        work.orders.add(aggregate)
    else:
        raise TypeError(f"no repository keeps a {aggregate.kind}")


def in_memory() -> Backend:
    fake = FakeStore()

    async def read_log() -> list[Logged]:
        return [
            Logged(n, e.stream_id, e.version, type(e.event).__name__, e.event, e.correlation_id)
            for n, e in enumerate(fake.log, start=1)
        ]

    return Backend(fake, read_log)


@asynccontextmanager
async def in_database(url: str) -> AsyncIterator[Backend]:
    """The SQL store on a migrated database, built from the service's engines and log as
    bootstrap builds the service's own."""
    services = bootstrap(Settings(database_url=url))
    try:
        await services.migrate()
        store = SqlCommandStore(
            services.write_engine,
            services.log,
            outcomes_engine=services.log_engine,
            clock=utc_now,
            on_commit=services.projector.wake,
            read_models_at=services.projector.wait_for,
        )

        async def read_log() -> list[Logged]:
            async with services.log_engine.connect() as connection:
                stored = await services.log.read(connection, after=0, limit=10_000)
            return [
                Logged(
                    e.position,
                    e.stream_id,
                    e.stream_version,
                    e.event_type,
                    e.event,
                    e.correlation_id,
                )
                for e in stored
            ]

        yield Backend(store, read_log)
    finally:
        await services.stop()


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "memory":
        yield in_memory()
    elif request.param == "sqlite":
        async with in_database(sqlite_url(tmp_path)) as sqlite:
            yield sqlite
    else:
        async with postgres_database_url() as url, in_database(url) as postgres:
            yield postgres


def product(product_id: str, sku: str, *, stock: int = 5, price: str = "2.50") -> Product:
    return Product.create(
        product_id,
        sku=sku,
        name=f"Product {sku}",
        description="",
        price=Decimal(price),
        currency="USD",
        stock=stock,
    )


def customer(customer_id: str, email: str) -> Customer:
    return Customer.register(customer_id, name=f"Customer {customer_id}", email=email)


async def test_commit_stores_the_aggregates_with_their_events_at_increasing_positions(
    backend: Backend,
) -> None:
    anvil = product("p1", "A", stock=2)
    first = await backend.commit(anvil, customer("c1", "ada@example.com"))
    async with backend.work() as work:
        loaded = await work.products.get("p1")
        assert loaded is not None
        loaded.restock(3)
        loaded.restock(1)
        second = await work.commit()

    log = await backend.log()
    assert [(e.stream_id, e.version, e.event_type) for e in log] == [
        ("c1", 1, "CustomerRegistered"),
        ("p1", 1, "ProductCreated"),
        ("p1", 2, "ProductRestocked"),
        ("p1", 3, "ProductRestocked"),
    ]
    assert [e.event for e in log] == [
        CustomerRegistered("c1", "Customer c1", "ada@example.com"),
        ProductCreated("p1", "A", "Product A", "", Decimal("2.50"), "USD", 2),
        ProductRestocked("p1", 3, 5),
        ProductRestocked("p1", 1, 6),
    ]
    assert {e.correlation_id for e in log} == {"contract"}
    positions = [e.position for e in log]
    assert positions == sorted(set(positions))
    assert (first, second) == (positions[1], positions[3])
    assert (loaded.stored_version, loaded.pending_events) == (3, [])
    assert (anvil.stored_version, anvil.pending_events) == (1, [])

    stored = await backend.product("p1")
    assert stored is not None
    assert (stored.sku, stored.name, stored.price.amount, stored.price.currency) == (
        "A",
        "Product A",
        Decimal("2.50"),
        "USD",
    )
    assert (stored.stock, stored.version, stored.deleted) == (6, 3, False)
    registered = await backend.customer("c1")
    assert registered is not None
    assert (registered.name, registered.email, registered.version) == (
        "Customer c1",
        "ada@example.com",
        1,
    )


async def test_a_commit_that_changed_nothing_appends_nothing_and_has_no_position(
    backend: Backend,
) -> None:
    await backend.commit(product("p1", "A"))
    before = await backend.log()
    async with backend.work() as work:
        assert await work.products.get("p1") is not None
        position = await work.commit()
    assert position == 0
    assert await backend.log() == before


class Abandoned(Exception):
    pass


@pytest.mark.parametrize("raising", [False, True], ids=["returning", "raising"])
async def test_leaving_without_commit_stores_nothing(backend: Backend, raising: bool) -> None:
    await backend.commit(product("p1", "A", stock=5))
    before = await backend.log()
    with contextlib.suppress(Abandoned):
        async with backend.work() as work:
            work.products.add(product("p2", "B"))
            work.customers.add(customer("c1", "ada@example.com"))
            loaded = await work.products.get("p1")
            assert loaded is not None
            loaded.restock(4)
            if raising:
                raise Abandoned
    assert await backend.log() == before
    assert (await backend.product("p2"), await backend.customer("c1")) == (None, None)
    stored = await backend.product("p1")
    assert stored is not None
    assert (stored.stock, stored.version) == (5, 1)


async def _stored_sku(work: UnitOfWork) -> None:
    work.products.add(product("p3", "A"))


async def _one_sku_twice(work: UnitOfWork) -> None:
    work.products.add(product("p3", "B"))


async def _stored_email(work: UnitOfWork) -> None:
    work.customers.add(customer("c3", " ADA@example.com"))


async def _one_email_twice(work: UnitOfWork) -> None:
    work.customers.add(customer("c3", "Bob@Example.com "))


async def _unknown_event(work: UnitOfWork) -> None:
    loaded = await work.products.get("p1")
    assert loaded is not None
    loaded.pending_events.append(object())


@pytest.mark.parametrize(
    ("fault", "refusal"),
    [
        pytest.param(_stored_sku, sku_taken(), id="sku-of-a-stored-product"),
        pytest.param(_one_sku_twice, sku_taken(), id="sku-twice-in-the-unit-of-work"),
        pytest.param(_stored_email, email_taken(), id="email-of-a-stored-customer"),
        pytest.param(_one_email_twice, email_taken(), id="email-twice-in-the-unit-of-work"),
        pytest.param(
            _unknown_event,
            UnknownEventType("object is not a registered event"),
            id="event-the-log-does-not-know",
        ),
    ],
)
async def test_a_failing_commit_stores_nothing_of_its_unit_of_work(
    backend: Backend, fault: Callable[[UnitOfWork], Awaitable[None]], refusal: Exception
) -> None:
    await backend.commit(product("p1", "A", stock=5), customer("c1", "ada@example.com"))
    before = await backend.log()
    async with backend.work() as work:
        loaded = await work.products.get("p1")
        assert loaded is not None
        loaded.restock(2)
        work.products.add(product("p2", "B"))
        work.customers.add(customer("c2", "bob@example.com"))
        await fault(work)
        with pytest.raises(type(refusal)) as refused:
            await work.commit()
    assert str(refused.value) == str(refusal)
    assert await backend.log() == before
    assert [await backend.product(p) for p in ("p2", "p3")] == [None, None]
    assert [await backend.customer(c) for c in ("c2", "c3")] == [None, None]
    stored = await backend.product("p1")
    assert stored is not None
    assert (stored.stock, stored.version) == (5, 1)
    assert (loaded.stored_version, loaded.version) == (1, 2)


async def test_of_two_changes_from_one_version_the_second_commit_is_refused(
    backend: Backend,
) -> None:
    await backend.commit(product("p1", "A", stock=5))
    async with backend.work() as reading:
        stale = await reading.products.get("p1")
    assert stale is not None
    async with backend.work() as first:
        current = await first.products.get("p1")
        assert current is not None
        current.restock(2)
        await first.commit()
    async with backend.work() as second:
        stale.restock(10)
        second.products.add(stale)
        second.products.add(product("p2", "B"))
        with pytest.raises(VersionConflict) as conflict:
            await second.commit()

    refused = conflict.value
    assert (refused.kind, refused.entity_id, refused.expected, refused.actual) == (
        "Product",
        "p1",
        1,
        2,
    )
    assert await backend.events() == [("p1", 1, "ProductCreated"), ("p1", 2, "ProductRestocked")]
    assert (await backend.log())[-1].event == ProductRestocked("p1", 2, 7)
    stored = await backend.product("p1")
    assert stored is not None
    assert (stored.stock, stored.version) == (7, 2)
    assert await backend.product("p2") is None


@dataclass(frozen=True, slots=True)
class Race:
    """Two new aggregates that may not both be kept, how a command looks for the first
    before adding the second, and what the loser is told."""

    rivals: Callable[[], tuple[Aggregate, Aggregate]]
    taken: Callable[[UnitOfWork], Awaitable[bool]]
    refusal: ValidationFailed


SKU_RACE = Race(
    lambda: (product("p1", "RACE"), product("p2", "RACE")),
    lambda work: work.products.sku_taken("RACE"),
    sku_taken(),
)
EMAIL_RACE = Race(
    lambda: (customer("c1", "Ada@Example.com"), customer("c2", " ada@EXAMPLE.com ")),
    lambda work: work.customers.email_taken("ada@example.com"),
    email_taken(),
)


@pytest.mark.parametrize("race", [SKU_RACE, EMAIL_RACE], ids=["sku", "normalised-email"])
async def test_of_two_writes_that_both_found_a_sku_or_email_free_the_later_is_refused(
    backend: Backend, race: Race
) -> None:
    winner, loser = race.rivals()
    looked: list[bool] = []
    for _ in (winner, loser):
        async with backend.work() as work:
            looked.append(await race.taken(work))
    assert looked == [False, False]

    position = await backend.commit(winner)
    async with backend.work() as work:
        add(work, loser)
        with pytest.raises(ValidationFailed) as refused:
            await work.commit()

    assert refused.value.issues == race.refusal.issues
    assert [(e.stream_id, e.position) for e in await backend.log()] == [(winner.id, position)]
    assert await backend.stored(loser) is None
    kept = await backend.stored(winner)
    assert kept is not None
    assert kept.version == 1
    async with backend.work() as work:
        assert await race.taken(work)


async def test_a_claim_is_stored_with_its_write_and_only_once(backend: Backend) -> None:
    claim = IdempotencyClaim("RestockProduct:staff-1", "key-1", "digest-1", kind="Product")
    await backend.commit(product("p1", "A", stock=5))
    assert await backend.store.outcome(claim) is None

    async with backend.work(claim) as work:
        loaded = await work.products.get("p1")
        assert loaded is not None
        loaded.restock(2)
        work.customers.add(customer("c1", "ada@example.com"))
        position = await work.commit()
    outcome = await backend.store.outcome(claim)
    assert outcome == StoredOutcome("digest-1", "p1", 2, position)
    assert (await backend.log())[-1].position == position

    retry = IdempotencyClaim(claim.scope, claim.key, "digest-2", kind="Product")
    before = await backend.log()
    async with backend.work(retry) as work:
        again = await work.products.get("p1")
        assert again is not None
        again.restock(5)
        work.customers.add(customer("c2", "bob@example.com"))
        with pytest.raises(KeyAlreadyUsed):
            await work.commit()
    assert await backend.log() == before
    assert await backend.store.outcome(retry) == outcome
    assert await backend.customer("c2") is None
    stored = await backend.product("p1")
    assert stored is not None
    assert (stored.stock, stored.version) == (7, 2)

    elsewhere = IdempotencyClaim("RestockProduct:staff-2", claim.key, "digest-1", kind="Product")
    async with backend.work(elsewhere) as work:
        loaded = await work.products.get("p1")
        assert loaded is not None
        loaded.restock(1)
        later = await work.commit()
    assert await backend.store.outcome(elsewhere) == StoredOutcome("digest-1", "p1", 3, later)
    assert await backend.store.outcome(claim) == outcome


@pytest.mark.parametrize(
    ("writes", "count"),
    [
        pytest.param(lambda: [customer("c1", "ada@example.com")], 0, id="none"),
        pytest.param(lambda: [product("p1", "A"), product("p2", "B")], 2, id="two"),
    ],
)
async def test_a_claimed_write_must_write_one_entity_of_the_claims_kind(
    backend: Backend, writes: Callable[[], list[Aggregate]], count: int
) -> None:
    claim = IdempotencyClaim("CreateProduct:staff-1", "key-1", "digest-1", kind="Product")
    aggregates = writes()
    async with backend.work(claim) as work:
        for aggregate in aggregates:
            add(work, aggregate)
        with pytest.raises(RuntimeError) as refused:
            await work.commit()
    assert str(refused.value) == f"an idempotent command must write one Product, not {count}"
    assert await backend.log() == []
    assert await backend.store.outcome(claim) is None
    for aggregate in aggregates:
        assert await backend.stored(aggregate) is None


async def test_repositories_hand_out_independent_copies(backend: Backend) -> None:
    await backend.commit(product("p1", "A", stock=5))
    async with backend.work() as work:
        held = await work.products.get("p1")
        assert held is not None
        held.restock(4)
        assert await work.products.get("p1") is held
        assert (await work.products.get_many(["p1"]))["p1"] is held
    async with backend.work() as other:
        seen = await other.products.get("p1")
    assert seen is not None
    assert seen is not held
    assert (seen.stock, seen.version) == (5, 1)

    async with backend.work() as work:
        changed = await work.products.get("p1")
        assert changed is not None
        changed.restock(1)
        await work.commit()
        changed.restock(100)
    seen.stock = 0
    stored = await backend.product("p1")
    assert stored is not None
    assert (stored.stock, stored.version) == (6, 2)
    assert await backend.events() == [("p1", 1, "ProductCreated"), ("p1", 2, "ProductRestocked")]


async def test_an_order_commits_with_its_stock_reservations_at_once(backend: Backend) -> None:
    await backend.commit(
        customer("c1", "ada@example.com"),
        product("p1", "A", stock=5, price="2.50"),
        product("p2", "B", stock=3, price="10"),
    )
    claim = IdempotencyClaim("PlaceOrder:c1", "key-1", "digest-1", kind="Order")
    async with backend.work(claim) as work:
        buyer = await work.customers.get("c1")
        products = await work.products.get_many(["p2", "p1", "p2", "p9"])
        assert buyer is not None
        assert list(products) == ["p1", "p2"]
        order = Order.place(
            "o1",
            customer=buyer,
            wanted=[Wanted(products["p2"], 2), Wanted(products["p1"], 1)],
            shipping_address=ADDRESS,
            special_instructions="Leave it at the door",
        )
        work.orders.add(order)
        position = await work.commit()

    log = await backend.log()
    assert [(e.stream_id, e.version, e.event_type) for e in log[3:]] == [
        ("o1", 1, "OrderPlaced"),
        ("p1", 2, "StockReserved"),
        ("p2", 2, "StockReserved"),
    ]
    lines = (
        OrderLine("p2", "Product B", Decimal("10.00"), 2),
        OrderLine("p1", "Product A", Decimal("2.50"), 1),
    )
    assert [e.event for e in log[3:]] == [
        OrderPlaced(
            "o1",
            "c1",
            "Customer c1",
            "ada@example.com",
            lines,
            "USD",
            Decimal("22.50"),
            ADDRESS,
            "Leave it at the door",
        ),
        StockReserved("p1", "o1", 1, 4),
        StockReserved("p2", "o1", 2, 1),
    ]
    assert position == log[-1].position
    assert await backend.store.outcome(claim) == StoredOutcome("digest-1", "o1", 1, position)

    stored = await backend.order("o1")
    assert stored is not None
    assert stored is not order
    assert (stored.lines, stored.shipping_address, stored.status) == (
        lines,
        ADDRESS,
        OrderStatus.PENDING,
    )
    assert (stored.customer_id, stored.currency, stored.total, stored.version) == (
        "c1",
        "USD",
        Decimal("22.50"),
        1,
    )
    assert stored.special_instructions == "Leave it at the door"
    stocks = [await backend.product(p) for p in ("p1", "p2")]
    assert [(p.stock, p.version) for p in stocks if p is not None] == [(4, 2), (1, 2)]


async def test_an_order_whose_stock_moved_meanwhile_stores_nothing(backend: Backend) -> None:
    await backend.commit(
        customer("c1", "ada@example.com"),
        product("p1", "A", stock=5),
        product("p2", "B", stock=3),
    )
    async with backend.work() as reading:
        stale = await reading.products.get_many(["p1", "p2"])
    async with backend.work() as restocking:
        moved = await restocking.products.get("p2")
        assert moved is not None
        moved.restock(1)
        await restocking.commit()
    before = await backend.log()

    async with backend.work() as work:
        buyer = await work.customers.get("c1")
        assert buyer is not None
        for stale_product in stale.values():
            work.products.add(stale_product)
        order = Order.place(
            "o1",
            customer=buyer,
            wanted=[Wanted(stale["p1"], 1), Wanted(stale["p2"], 1)],
            shipping_address=ADDRESS,
        )
        work.orders.add(order)
        with pytest.raises(VersionConflict) as conflict:
            await work.commit()

    assert (conflict.value.entity_id, conflict.value.expected, conflict.value.actual) == (
        "p2",
        1,
        2,
    )
    assert await backend.log() == before
    assert await backend.order("o1") is None
    stocks = [await backend.product(p) for p in ("p1", "p2")]
    assert [(p.stock, p.version) for p in stocks if p is not None] == [(5, 1), (4, 2)]


async def test_a_unit_of_work_commits_only_inside_async_with(backend: Backend) -> None:
    work = backend.work()
    with pytest.raises(RuntimeError, match="inside `async with`"):
        await work.commit()
    async with work:
        work.products.add(product("p1", "A"))
    with pytest.raises(RuntimeError, match="inside `async with`"):
        await work.commit()
    assert await backend.log() == []
    assert await backend.product("p1") is None
