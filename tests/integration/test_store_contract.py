"""One contract for storage, run against SQLite and PostgreSQL alike: the unit of work, the
event log and the projector behave the same on both."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from domain.errors import ValidationFailed, VersionConflict
from domain.products import Product, ProductCreated, ProductRestocked
from handlers.access import Identity, Role
from handlers.customers import RegisterCustomer
from handlers.products import PRODUCT_CATALOG, CreateProduct, GetProducts, RestockProduct
from mediator import Context
from orderdesk.bootstrap import PROJECTIONS, Services, bootstrap, utc_now
from orderdesk.settings import Settings
from persistence.event_log import NewEvent, StoredEvent
from persistence.projector import Projector
from persistence.reaction_checkpoints import ROW_PREFIX
from persistence.tables import event_log, product_catalog, products, projection_checkpoints
from persistence.unit_of_work import SqlUnitOfWork
from tests.databases import postgres_database_url, sqlite_url
from tests.graphql_client import TEST_SECRET


@pytest.fixture(params=["sqlite", "postgres"])
async def services(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Services]:
    async def run(url: str) -> AsyncIterator[Services]:
        settings = Settings(database_url=url, poll_interval=0.2, jwt_secret=SecretStr(TEST_SECRET))
        started = bootstrap(settings)
        await started.start()
        try:
            yield started
        finally:
            await started.stop()

    if request.param == "sqlite":
        async for s in run(sqlite_url(tmp_path)):
            yield s
    else:
        async with postgres_database_url() as url:
            async for s in run(url):
                yield s


async def log_of(services: Services) -> list[StoredEvent]:
    async with services.log_engine.connect() as connection:
        return await services.log.read(connection, after=0, limit=10_000)


async def count(services: Services, table: object) -> int:
    async with services.write_engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(table)) or 0)  # type: ignore[arg-type]


def staff(correlation_id: str | None = None) -> Context:
    return Context(correlation_id=correlation_id, identity=Identity("staff", Role.STAFF))


def unit_of_work(services: Services) -> SqlUnitOfWork:
    return SqlUnitOfWork(
        services.write_engine,
        services.log,
        clock=utc_now,
        correlation_id="test",
        on_commit=lambda _p: None,
    )


async def test_commit_stores_the_row_and_its_events_together(services: Services) -> None:
    written = await services.mediator.send(
        CreateProduct(sku="A", name="Anvil", price=Decimal("1.5"), stock=2),
        staff(correlation_id="c1"),
    )
    await services.mediator.send(RestockProduct(written.entity_id, 3), staff())
    events = await log_of(services)
    assert [e.event for e in events] == [
        ProductCreated(written.entity_id, "A", "Anvil", "", Decimal("1.50"), "USD", 2),
        ProductRestocked(written.entity_id, 3, 5),
    ]
    assert [(e.stream_id, e.stream_version) for e in events] == [
        (written.entity_id, 1),
        (written.entity_id, 2),
    ]
    assert events[0].correlation_id == "c1"
    assert events[0].position < events[1].position
    assert events[0].occurred_at.tzinfo is not None


async def test_leaving_without_commit_stores_nothing(services: Services) -> None:
    async def fail_half_way() -> None:
        async with unit_of_work(services) as work:
            work.products.add(
                Product.create(
                    "p1",
                    sku="A",
                    name="A",
                    description="",
                    price=Decimal(1),
                    currency="USD",
                    stock=1,
                )
            )
            raise RuntimeError("failed half-way")

    with pytest.raises(RuntimeError, match="half-way"):
        await fail_half_way()
    assert await count(services, products) == 0
    assert await count(services, event_log) == 0


async def test_a_failing_append_rolls_back_the_row(services: Services) -> None:
    await services.mediator.send(CreateProduct(sku="A", name="A", price=Decimal(1)), staff())
    async with unit_of_work(services) as work:
        product = Product.create(
            "p2", sku="B", name="B", description="", price=Decimal(1), currency="USD", stock=1
        )
        work.products.add(product)
        # An event type the log does not know makes the append fail after the row is written.
        product.pending_events.append(object())
        with pytest.raises(LookupError):
            await work.commit()
    assert await count(services, products) == 1
    assert await count(services, event_log) == 1


async def test_concurrent_changes_lose_no_update(services: Services) -> None:
    written = await services.mediator.send(
        CreateProduct(sku="A", name="A", price=Decimal(1)), staff()
    )
    await asyncio.gather(
        *(services.mediator.send(RestockProduct(written.entity_id, 1), staff()) for _ in range(20))
    )
    events = await log_of(services)
    assert [e.stream_version for e in events] == list(range(1, 22))
    assert [e.event.stock for e in events[1:]] == list(range(1, 21))  # type: ignore[attr-defined]
    views = await services.mediator.send(GetProducts((written.entity_id,)), staff())
    assert (views[written.entity_id].stock, views[written.entity_id].version) == (20, 21)


async def test_a_stale_expected_version_is_refused(services: Services) -> None:
    written = await services.mediator.send(
        CreateProduct(sku="A", name="A", price=Decimal(1)), staff()
    )
    await services.mediator.send(RestockProduct(written.entity_id, 1, expected_version=1), staff())
    with pytest.raises(VersionConflict):
        await services.mediator.send(
            RestockProduct(written.entity_id, 1, expected_version=1), staff()
        )
    assert await count(services, event_log) == 2


async def test_the_projector_applies_each_event_once(services: Services) -> None:
    written = await services.mediator.send(
        CreateProduct(sku="A", name="A", price=Decimal(1)), staff()
    )
    await services.mediator.send(RestockProduct(written.entity_id, 4), staff())
    await services.projector.catch_up()
    await services.projector.catch_up()
    async with services.read_engine.connect() as connection:
        row = (await connection.execute(select(product_catalog))).one()
    assert (row.stock, row.version) == (4, 2)
    assert services.projector.position == (await log_of(services))[-1].position
    assert {s.parked_error for s in services.projector.status()} == {None}


async def test_nul_characters_are_refused_before_any_database_sees_them(
    services: Services,
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        await services.mediator.send(
            CreateProduct(sku="A", name="An\x00vil", description="x\x00", price=Decimal(1)),
            staff(),
        )
    assert {i.path for i in refused.value.issues} == {("name",), ("description",)}
    assert await count(services, event_log) == 0


async def test_workers_migrating_at_once_all_start(tmp_path: Path) -> None:
    """As `orderdesk serve --workers 3` does on a fresh database."""
    async with postgres_database_url() as url:
        workers = [
            bootstrap(Settings(database_url=url, jwt_secret=SecretStr(TEST_SECRET)))
            for _ in range(3)
        ]
        try:
            await asyncio.gather(*(w.migrate() for w in workers))
        finally:
            for worker in workers:
                await worker.stop()


@pytest.mark.parametrize("attempt", range(3))
async def test_workers_starting_at_once_on_a_fresh_database_all_start(attempt: int) -> None:
    """Migrate, then make the checkpoint rows: four workers of `orderdesk serve` at once."""
    async with postgres_database_url() as url:
        workers = [
            bootstrap(Settings(database_url=url, jwt_secret=SecretStr(TEST_SECRET)))
            for _ in range(4)
        ]
        try:
            await asyncio.gather(*(w.start() for w in workers))
            async with workers[0].read_model_engine.connect() as connection:
                names = (await connection.scalars(select(projection_checkpoints.c.name))).all()
            # One row each: every projection's, and every reaction handler's beside them.
            reactions = [ROW_PREFIX + name for name in workers[0].reactor.takes]
            assert sorted(names) == sorted([p.name for p in PROJECTIONS] + reactions)
        finally:
            for worker in workers:
                await worker.stop()


async def test_a_batch_of_events_takes_positions_in_the_order_given(services: Services) -> None:
    restocks = [
        NewEvent("Product", f"p{n % 3}", n // 3 + 1, ProductRestocked(f"p{n % 3}", 1, n))
        for n in range(60)
    ]
    async with services.write_engine.begin() as connection:
        last = await services.log.append(
            connection, restocks, occurred_at=utc_now(), correlation_id="batch"
        )
    stored = await log_of(services)
    assert [e.event for e in stored] == [r.event for r in restocks]
    assert [e.position for e in stored] == sorted(e.position for e in stored)
    assert last == stored[-1].position


async def test_two_processes_projecting_one_log_at_once_never_deadlock(
    services: Services,
) -> None:
    """Two products changed in turn, and two projectors (as of two processes) that read the
    log in batches of other sizes: each batch first touches one product or the other, so
    without an order between them their row locks would cross."""
    ids = [
        (
            await services.mediator.send(CreateProduct(sku=s, name=s, price=Decimal(1)), staff())
        ).entity_id
        for s in ("A", "B")
    ]
    for turn in range(24):
        await services.mediator.send(RestockProduct(ids[turn % 2], 1), staff())
    await services.projector.stop()
    async with services.read_model_engine.begin() as connection:
        await connection.execute(product_catalog.delete())
        await connection.execute(
            projection_checkpoints.update()
            .where(projection_checkpoints.c.name == PRODUCT_CATALOG.name)
            .values(position=0)
        )
    rivals = [
        Projector(
            log=services.log,
            log_engine=services.log_engine,
            read_model_engine=services.read_model_engine,
            projections=[PRODUCT_CATALOG],
            batch_size=size,
        )
        for size in (3, 4)
    ]
    try:
        await asyncio.gather(*(rival.start() for rival in rivals))
        await asyncio.gather(*(rival.catch_up() for rival in rivals))
    finally:
        await asyncio.gather(*(rival.stop() for rival in rivals))
    for rival in rivals:
        assert [(s.failures, s.parked_error) for s in rival.status()] == [(0, None)]
    async with services.read_engine.connect() as connection:
        stocks = dict(
            (await connection.execute(select(product_catalog.c.id, product_catalog.c.stock))).all()
        )
    assert stocks == {ids[0]: 12, ids[1]: 12}


async def test_one_of_many_concurrent_creates_of_a_sku_or_an_email_wins(
    services: Services,
) -> None:
    """The losers of the race past the look-up are refused by the unique constraint, and
    told so as the look-up would have (not an internal error)."""
    creates = await asyncio.gather(
        *(
            services.mediator.send(CreateProduct(sku="RACE", name="R", price=Decimal(1)), staff())
            for _ in range(10)
        ),
        return_exceptions=True,
    )
    refused = [r for r in creates if isinstance(r, ValidationFailed)]
    assert len(refused) == 9, creates
    assert {issue.path for r in refused for issue in r.issues} == {("sku",)}

    anyone = Context(correlation_id=None, identity=None)
    registrations = await asyncio.gather(
        *(
            services.mediator.send(RegisterCustomer("Ada", "ada@example.com"), anyone)
            for _ in range(10)
        ),
        return_exceptions=True,
    )
    refused = [r for r in registrations if isinstance(r, ValidationFailed)]
    assert len(refused) == 9, registrations
    assert {issue.path for r in refused for issue in r.issues} == {("email",)}
