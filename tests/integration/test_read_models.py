"""The read models as the projector keeps them: rebuilt from the log they equal the live ones,
a replay changes nothing, a broken projection does not stop writes, no event is skipped when
PostgreSQL commits out of position order, and the read models may live in another database."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pydantic import SecretStr
from sqlalchemy import Connection, MetaData, Table, inspect, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from domain.orders import OrderPlaced
from domain.products import PRODUCT_EVENTS, ProductCreated
from orderdesk.bootstrap import PROJECTIONS, Services, bootstrap
from orderdesk.settings import Settings
from persistence.database import create_engine
from persistence.event_codec import EventCodec
from persistence.event_log import EventLog, NewEvent, StoredEvent
from persistence.migrate import Target, migrate
from persistence.projector import Projection, Projector, UnknownProjection
from persistence.reaction_checkpoints import ROW_PREFIX
from persistence.tables import (
    customer_summaries,
    order_lines,
    order_summaries,
    product_catalog,
    projection_checkpoints,
    read_metadata,
    write_metadata,
)
from tests.databases import postgres_database_url, sqlite_url
from tests.graphql_client import TEST_SECRET, GraphQLClient
from tests.read_side import (
    CANCEL_ORDER,
    CONFIRM_ORDER,
    place_order,
    seed_shop,
)
from tests.served import Served, serve

READ_MODELS = (product_catalog, customer_summaries, order_summaries, order_lines)
Snapshot = dict[str, list[dict[str, Any]]]


async def snapshot(url: str, tables: tuple[Table, ...] = READ_MODELS) -> Snapshot:
    """Every row of every read model, in primary-key order."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return {
                table.name: [
                    dict(row._mapping)
                    for row in await connection.execute(
                        select(table).order_by(*table.primary_key.columns)
                    )
                ]
                for table in tables
            }
    finally:
        await engine.dispose()


async def busy_shop(client: GraphQLClient) -> None:
    """Every kind of event the read models react to."""
    shop = await seed_shop(client, customers=3, orders=9)
    await client.execute(CANCEL_ORDER, {"input": {"id": shop.orders[0]["id"]}})
    await client.execute(CONFIRM_ORDER, {"input": {"id": shop.orders[1]["id"]}})
    await client.execute(
        """mutation($id: ID!) {
            updateProduct(input: {id: $id, name: "Renamed", price: "7.50"}) { __typename }
            restockProduct(input: {id: $id, quantity: 5}) { __typename }
        }""",
        {"id": shop.products[0]},
    )


async def started(settings: Settings) -> Services:
    """A second set of services on the same databases, in the test's own event loop (the
    served app's belong to the server thread), as the command line would build them."""
    services = bootstrap(settings)
    await services.projector.start()
    await services.projector.stop()  # keep its checkpoints, stop following the log
    return services


# ---------------------------------------------------------------- rebuild and replay


async def test_a_rebuild_reproduces_the_live_read_models_row_by_row(
    client: GraphQLClient, settings: Settings
) -> None:
    await busy_shop(client)
    live = await snapshot(settings.read_models_url)
    assert all(live[table.name] for table in READ_MODELS)

    # Damage the read models; a rebuild from the log must make them whole again.
    engine = create_async_engine(settings.read_models_url)
    async with engine.begin() as connection:
        await connection.execute(update(customer_summaries).values(order_count=999))
        await connection.execute(order_lines.delete())
        await connection.execute(update(product_catalog).values(name="wrong"))
    await engine.dispose()
    assert await snapshot(settings.read_models_url) != live

    services = await started(settings)
    try:
        head = await services.projector.log_head()
        await services.projector.rebuild()
        assert await snapshot(settings.read_models_url) == live
        statuses = await services.projector.stored_status()
        assert {s.name: s.position for s in statuses} == {
            "product_catalog": head,
            "customer_summaries": head,
            "orders": head,
            "webhook_summaries": head,
        }
    finally:
        await services.stop()


async def test_rebuilding_one_projection_leaves_the_others_alone(
    client: GraphQLClient, settings: Settings
) -> None:
    await busy_shop(client)
    live = await snapshot(settings.read_models_url)
    engine = create_async_engine(settings.read_models_url)
    async with engine.begin() as connection:
        await connection.execute(update(order_summaries).values(status="PENDING"))
        await connection.execute(update(customer_summaries).values(order_count=999))
    await engine.dispose()

    services = await started(settings)
    try:
        with pytest.raises(UnknownProjection, match="nope"):
            await services.projector.rebuild(["nope"])
        await services.projector.rebuild(["orders"])
    finally:
        await services.stop()
    rebuilt = await snapshot(settings.read_models_url)
    assert rebuilt["order_summaries"] == live["order_summaries"]
    assert rebuilt["order_lines"] == live["order_lines"]
    assert {row["order_count"] for row in rebuilt["customer_summaries"]} == {999}


async def test_a_replay_changes_nothing(client: GraphQLClient, settings: Settings) -> None:
    shop = await seed_shop(client, customers=2, orders=2)
    # A second projector that read its checkpoints now, then fell behind.
    stale = await started(settings)
    try:
        for n in range(4):
            await place_order(client, shop.customers[n % 2].id, [(shop.products[0], 1)])
        live = await snapshot(settings.read_models_url)
        assert sorted(row["order_count"] for row in live["customer_summaries"]) == [3, 3]
        # It replays the six newest events onto read models that already show them: the
        # checkpoints it expects have moved, so nothing is applied twice.
        await stale.projector.catch_up()
        assert await snapshot(settings.read_models_url) == live
        # And a projector that is up to date finds nothing to do.
        fresh = await started(settings)
        await fresh.projector.catch_up()
        await fresh.stop()
        assert await snapshot(settings.read_models_url) == live
    finally:
        await stale.stop()


# ---------------------------------------------------------------- a broken projection


async def fail_on_orders(_connection: AsyncConnection, stored: StoredEvent) -> None:
    if isinstance(stored.event, OrderPlaced):
        raise RuntimeError("this read model cannot take orders")


@pytest.fixture
def served_with_a_broken_projection(settings: Settings) -> Iterator[Served]:
    with serve(settings, extra_projections=[Projection("broken", fail_on_orders)]) as running:
        yield running


async def test_a_parked_projection_does_not_block_place_order(
    served_with_a_broken_projection: Served, settings: Settings
) -> None:
    served = served_with_a_broken_projection
    async with httpx.AsyncClient(timeout=30) as http:
        client = GraphQLClient(http, served)
        shop = await seed_shop(client, customers=1, orders=0)
        ready_url = served.http_url.replace("/graphql", "/health/ready")
        assert (await http.get(ready_url)).status_code == 200

        # It fails, is retried with backoff, then parked: the order is placed regardless,
        # and its payload read from the read models that work.
        order = await place_order(client, shop.customers[0].id, [(shop.products[0], 2)])
        assert order["status"] == "PENDING"
        second = await place_order(client, shop.customers[0].id, [(shop.products[1], 1)])
        listed = (await client.execute("{ orders { totalCount } }"))["orders"]
        assert listed["totalCount"] == 2
        assert second["id"] != order["id"]

        ready = await http.get(ready_url)
        assert ready.status_code == 503
        assert ready.json()["status"] == "degraded"
        assert ready.json()["projectionsParked"] == ["broken"]

    # The parked error is stored, for `orderdesk projections status` in another process.
    services = bootstrap(settings, extra_projections=[Projection("broken", fail_on_orders)])
    try:
        statuses = {s.name: s for s in await services.projector.stored_status()}
        assert statuses["broken"].parked_error is not None
        assert "cannot take orders" in statuses["broken"].parked_error
        assert statuses["orders"].parked_error is None
        assert statuses["orders"].position > statuses["broken"].position
    finally:
        await services.stop()


# ---------------------------------------------------------------- another read database


@pytest.fixture
def split_settings(tmp_path: Path) -> Settings:
    (tmp_path / "read").mkdir()
    return Settings(
        database_url=sqlite_url(tmp_path),
        read_database_url=sqlite_url(tmp_path / "read"),
        poll_interval=0.2,
        jwt_secret=SecretStr(TEST_SECRET),
    )


async def tables_of(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            names: list[str] = await connection.run_sync(
                lambda sync: inspect(sync).get_table_names()
            )
            return set(names)
    finally:
        await engine.dispose()


async def check_split_databases(settings: Settings) -> None:
    assert settings.read_database_url is not None
    with serve(settings) as served:
        async with httpx.AsyncClient(timeout=30) as http:
            client = GraphQLClient(http, served)
            shop = await seed_shop(client, customers=2, orders=3)
            listed = (
                await client.execute(
                    "{ orders { totalCount edges { node { id lines { quantity } } } } }"
                )
            )["orders"]
            assert listed["totalCount"] == 3
            assert {e["node"]["id"] for e in listed["edges"]} == {o["id"] for o in shop.orders}
            assert await client.event_count() > 0

    read_tables = {table.name for table in read_metadata.sorted_tables}
    write_tables = {table.name for table in write_metadata.sorted_tables}
    on_write = await tables_of(settings.database_url)
    on_read = await tables_of(settings.read_database_url)
    assert write_tables <= on_write
    assert not read_tables & on_write, "read models were created in the write database"
    assert read_tables <= on_read
    assert not write_tables & on_read, "the write model leaked into the read database"
    rows = await snapshot(settings.read_database_url, (order_summaries, projection_checkpoints))
    assert len(rows["order_summaries"]) == 3
    # The projections' checkpoints, and beside them the reaction handlers' (persistence/reactor.py).
    projections = {
        row["name"]
        for row in rows["projection_checkpoints"]
        if not row["name"].startswith(ROW_PREFIX)
    }
    assert projections == {p.name for p in PROJECTIONS}


async def test_read_models_on_another_sqlite_database(split_settings: Settings) -> None:
    await check_split_databases(split_settings)


async def test_postgres_writes_with_sqlite_read_models(tmp_path: Path) -> None:
    async with postgres_database_url() as url:
        await check_split_databases(
            Settings(
                database_url=url,
                read_database_url=sqlite_url(tmp_path),
                poll_interval=0.2,
                jwt_secret=SecretStr(TEST_SECRET),
            )
        )


# ---------------------------------------------------------------- migrations


def _diff(connection: Connection, metadata: MetaData) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        opts={
            "compare_type": True,
            # Both histories may share one database; the other's tables are not a difference.
            "include_object": lambda _obj, _name, kind, reflected, compare_to: (
                not (kind == "table" and reflected and compare_to is None)
            ),
        },
    )
    return list(compare_metadata(context, metadata))


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_the_migrations_build_exactly_the_declared_tables(
    backend: str, tmp_path: Path
) -> None:
    async def check(url: str) -> None:
        engine = create_engine(url, for_writes=True)
        try:
            targets: tuple[tuple[Target, MetaData], ...] = (
                ("write", write_metadata),
                ("read", read_metadata),
            )
            for target, metadata in targets:
                await migrate(engine, target)
                async with engine.connect() as connection:
                    diff = await connection.run_sync(_diff, metadata)
                assert diff == [], f"{target} migration and persistence/tables.py differ"
        finally:
            await engine.dispose()

    if backend == "sqlite":
        await check(sqlite_url(tmp_path))
    else:
        async with postgres_database_url() as url:
            await check(url)


# ---------------------------------------------------------------- out-of-order commits


@pytest.mark.postgres
async def test_a_lower_position_committing_last_is_never_skipped() -> None:
    """Two transactions append; the first takes the lower position and tries to commit
    last. The append lock makes the second wait for the first's commit, so a projector
    looking in between sees neither, and then both, in order; without the lock it would
    see the higher one first and move its checkpoint past the lower one for good."""
    async with postgres_database_url() as url:
        engine = create_engine(url)
        await migrate(engine, "write")
        await migrate(engine, "read")
        codec = EventCodec()
        codec.register(PRODUCT_EVENTS)
        log = EventLog(codec)
        applied: list[int] = []

        async def record(_connection: AsyncConnection, stored: StoredEvent) -> None:
            applied.append(stored.position)

        projector = Projector(
            log=log,
            log_engine=engine,
            read_model_engine=engine,
            projections=[Projection("recorder", record)],
        )

        def created(n: int) -> NewEvent:
            event = ProductCreated(f"p{n}", f"SKU-{n}", "x", "", Decimal(1), "USD", 1)
            return NewEvent("Product", f"p{n}", 1, event)

        async def append(connection: AsyncConnection, n: int) -> int:
            return await log.append(
                connection,
                [created(n)],
                occurred_at=datetime.now(UTC),
                correlation_id=f"c{n}",
            )

        try:
            await projector.start()
            await projector.stop()  # catch up by hand, at the moments the test picks
            async with engine.connect() as first:
                await first.begin()
                lower = await append(first, 1)

                async def second_writer() -> int:
                    async with engine.begin() as second:
                        return await append(second, 2)

                second = asyncio.create_task(second_writer())
                await asyncio.sleep(0.5)
                await projector.catch_up()
                assert applied == [], "the projector saw a later event before an earlier one"
                assert not second.done(), "the second append did not wait for the first"
                await first.commit()
            higher = await second
            await projector.catch_up()
            assert lower < higher
            assert applied == [lower, higher]
        finally:
            await engine.dispose()
