"""`orderdesk projections status` and `orderdesk projections rebuild`, run as a user would run
them, against a database a server has been writing to."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from domain.products import ProductCreated
from handlers.access import Identity, Role
from handlers.products import CreateProduct
from mediator import Context
from orderdesk.bootstrap import bootstrap
from orderdesk.cli import cli
from orderdesk.settings import Settings
from persistence.event_log import NewEvent
from persistence.tables import product_catalog, projection_checkpoints
from tests.databases import sqlite_url
from tests.graphql_client import TEST_SECRET

STAFF = Context(correlation_id="cli-test", identity=Identity("staff", Role.STAFF))


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    url = sqlite_url(tmp_path)
    monkeypatch.setenv("ORDERDESK_DATABASE_URL", url)
    monkeypatch.setenv("ORDERDESK_JWT_SECRET", TEST_SECRET)
    return Settings(database_url=url, jwt_secret=SecretStr(TEST_SECRET))


def seed(settings: Settings) -> None:
    """One product through the running service, then one event the projector has not seen
    (appended straight to the log, as if by a process that stopped before projecting it)."""

    async def run() -> None:
        services = bootstrap(settings)
        await services.start()
        try:
            await services.mediator.send(
                CreateProduct(sku="A-1", name="Anvil", price=Decimal(5)), STAFF
            )
        finally:
            await services.stop()
        services = bootstrap(settings)
        try:
            event = ProductCreated("p2", "B-2", "Bolt", "", Decimal(1), "USD", 3)
            async with services.write_engine.begin() as connection:
                await services.log.append(
                    connection,
                    [NewEvent("Product", "p2", 1, event)],
                    occurred_at=datetime.now(UTC),
                    correlation_id="cli-test",
                )
        finally:
            await services.stop()

    asyncio.run(run())


def query(settings: Settings, statement: object) -> object:
    async def run() -> object:
        services = bootstrap(settings)
        try:
            async with services.read_engine.connect() as connection:
                return await connection.scalar(statement)  # type: ignore[call-overload]
        finally:
            await services.stop()

    return asyncio.run(run())


def invoke(*arguments: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["projections", *arguments])
    return result.exit_code, result.output


def test_status_shows_positions_and_applies_nothing(settings: Settings) -> None:
    seed(settings)
    for _ in range(2):
        code, output = invoke("status")
        assert code == 0, output
        assert output.splitlines() == [
            "product_catalog\tposition 1 of 2 (1 behind)\trunning",
            "customer_summaries\tposition 1 of 2 (1 behind)\trunning",
            "orders\tposition 1 of 2 (1 behind)\trunning",
            "webhook_summaries\tposition 1 of 2 (1 behind)\trunning",
        ]
    assert query(settings, select(func.count()).select_from(product_catalog)) == 1


def test_status_shows_why_a_projection_is_parked(settings: Settings) -> None:
    seed(settings)

    async def park() -> None:
        services = bootstrap(settings)
        try:
            async with services.read_model_engine.begin() as connection:
                await connection.execute(
                    update(projection_checkpoints)
                    .where(projection_checkpoints.c.name == "orders")
                    .values(parked_error="RuntimeError: boom at position 2")
                )
        finally:
            await services.stop()

    asyncio.run(park())
    code, output = invoke("status")
    assert code == 0, output
    assert "orders\tposition 1 of 2 (1 behind)\tparked: RuntimeError: boom at position 2" in (
        output.splitlines()
    )


def test_rebuild_replays_one_projection_from_the_start(settings: Settings) -> None:
    seed(settings)
    code, output = invoke("rebuild", "product_catalog")
    assert code == 0, output
    assert output.splitlines() == ["product_catalog\tposition 2\trebuilt"]
    assert query(settings, select(func.count()).select_from(product_catalog)) == 2
    code, output = invoke("status")
    assert "product_catalog\tposition 2 of 2 (0 behind)\trunning" in output.splitlines()
    assert "orders\tposition 1 of 2 (1 behind)\trunning" in output.splitlines()


def test_rebuild_without_a_name_rebuilds_all(settings: Settings) -> None:
    seed(settings)
    code, output = invoke("rebuild")
    assert code == 0, output
    assert output.splitlines() == [
        "product_catalog\tposition 2\trebuilt",
        "customer_summaries\tposition 2\trebuilt",
        "orders\tposition 2\trebuilt",
        "webhook_summaries\tposition 2\trebuilt",
    ]


def test_an_unknown_projection_is_a_usage_error(settings: Settings) -> None:
    seed(settings)
    code, output = invoke("rebuild", "nope")
    assert code == 2
    assert "no projection is named nope" in output


def test_status_of_a_database_never_migrated_says_so(settings: Settings) -> None:
    code, output = invoke("status")
    assert code == 1
    assert "orderdesk migrate" in output
