"""The deliveries book on SQLite and PostgreSQL: a delivery is added once per webhook and
event, two couriers claiming at once never take the same one, one webhook's deliveries are
sent one at a time, a lapsed claim is taken again, a stale claim records nothing, and a
webhook's failures in a row count from its last success."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from handlers.webhooks.deliveries import Attempt, DeliveryStatus, NewDelivery, SqlDeliveries
from orderdesk.bootstrap import bootstrap
from persistence.tables import webhook_attempts, webhook_deliveries
from tests.databases import postgres_database_url, sqlite_settings

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=1)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def book(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlDeliveries]:
    if request.param == "sqlite":
        services = bootstrap(sqlite_settings(tmp_path))
        await services.migrate()
        try:
            yield SqlDeliveries(services.read_model_engine, reads=services.read_engine)
        finally:
            await services.stop()
        return
    async with postgres_database_url() as url:
        services = bootstrap(sqlite_settings(tmp_path, database_url=url))
        await services.migrate()
        try:
            yield SqlDeliveries(services.read_model_engine, reads=services.read_engine)
        finally:
            await services.stop()


def new(webhook: str, event: str, position: int = 1) -> NewDelivery:
    return NewDelivery(
        f"{webhook}-{event}", webhook, event, "ORDER_PLACED", position, "req", "{}", NOW
    )


def attempt(delivery: str, number: int, *, succeeded: bool, webhook: str = "w1") -> Attempt:
    return Attempt(
        delivery,
        webhook,
        number,
        NOW,
        succeeded,
        200 if succeeded else 500,
        None if succeeded else "answered 500",
        None,
        5,
        None if succeeded else LATER,
        DeliveryStatus.DELIVERED if succeeded else DeliveryStatus.PENDING,
    )


async def rows(book: SqlDeliveries) -> list[tuple[str, str, str | None]]:
    async with book._engine.connect() as connection:
        found = await connection.execute(
            select(
                webhook_deliveries.c.id,
                webhook_deliveries.c.status,
                webhook_deliveries.c.claimed_by,
            ).order_by(webhook_deliveries.c.id)
        )
        return [(row.id, row.status, row.claimed_by) for row in found]


async def test_a_delivery_is_added_once_per_webhook_and_event(book: SqlDeliveries) -> None:
    await book.add([new("w1", "e1"), new("w2", "e1")])
    await book.add([new("w1", "e1"), new("w1", "e2", 2)])
    assert [row[0] for row in await rows(book)] == ["w1-e1", "w1-e2", "w2-e1"]


async def test_two_couriers_claiming_at_once_take_each_delivery_once(book: SqlDeliveries) -> None:
    await book.add([new(f"w{n}", "e1", n) for n in range(1, 21)])
    one, other = await asyncio.gather(
        book.claim(now=NOW, until=LATER, token="a.1", limit=15),
        book.claim(now=NOW, until=LATER, token="b.1", limit=15),
    )
    taken = [d.id for d in one] + [d.id for d in other]
    assert len(taken) == len(set(taken)) == 20
    assert await book.claim(now=NOW, until=LATER, token="c.1", limit=15) == []
    # Once the claims lapse, the deliveries are due again.
    again = await book.claim(
        now=LATER + timedelta(seconds=1), until=LATER + timedelta(minutes=1), token="c.2", limit=50
    )
    assert len(again) == 20
    assert {d.claim for d in again} == {"c.2"}


async def test_one_webhooks_deliveries_are_sent_one_at_a_time(book: SqlDeliveries) -> None:
    """A slow endpoint with a backlog takes one sender, and the other webhooks go on."""
    await book.add([new("slow", f"e{n}", n) for n in range(1, 6)] + [new("fast", "e1", 9)])
    # The first four due are all the slow one's: it gets one sender...
    (slow,) = await book.claim(now=NOW, until=LATER, token="a.1", limit=4)
    assert slow.id == "slow-e1"
    # ...and the next claim, which the courier makes at once, passes it by.
    (fast,) = await book.claim(now=NOW, until=LATER, token="a.2", limit=4)
    assert fast.id == "fast-e1"
    assert await book.claim(now=NOW, until=LATER, token="a.3", limit=4) == []
    await book.record(attempt(slow.id, 1, succeeded=True, webhook="slow"), token=slow.claim)
    (after,) = await book.claim(now=NOW, until=LATER, token="a.4", limit=4)
    assert after.id == "slow-e2"


async def test_two_couriers_at_once_never_have_one_webhook_under_way_twice(
    book: SqlDeliveries,
) -> None:
    await book.add([new("slow", f"e{n}", n) for n in range(1, 6)])
    one, other = await asyncio.gather(
        book.claim(now=NOW, until=LATER, token="a.1", limit=4),
        book.claim(now=NOW, until=LATER, token="b.1", limit=4),
    )
    assert [d.id for d in one + other] == ["slow-e1"]


async def test_a_stale_claim_records_nothing(book: SqlDeliveries) -> None:
    await book.add([new("w1", "e1")])
    (mine,) = await book.claim(now=NOW, until=NOW + timedelta(seconds=1), token="a.1", limit=5)
    (theirs,) = await book.claim(
        now=LATER, until=LATER + timedelta(minutes=1), token="b.1", limit=5
    )
    await book.record(attempt(mine.id, 1, succeeded=False), token=mine.claim)
    assert await rows(book) == [("w1-e1", "PENDING", "b.1")]
    assert await book.failures_in_a_row("w1") == 0, "the stale attempt is not counted"
    await book.record(attempt(theirs.id, 1, succeeded=True), token=theirs.claim)
    assert await rows(book) == [("w1-e1", "DELIVERED", None)]
    assert await book.next_due(LATER) is None


async def test_failures_in_a_row_count_from_the_last_success_across_deliveries(
    book: SqlDeliveries,
) -> None:
    assert await book.failures_in_a_row("w1") == 0
    # The attempts as couriers recorded them, one after another.
    async with book._engine.begin() as connection:
        for delivery, number, succeeded, webhook in (
            ("d1", 1, False, "w1"),
            ("d1", 2, True, "w1"),
            ("d2", 1, False, "w1"),
            ("d3", 1, False, "w1"),
            ("d9", 1, False, "w2"),
        ):
            await connection.execute(
                insert(webhook_attempts).values(
                    delivery_id=delivery,
                    webhook_id=webhook,
                    number=number,
                    attempted_at=NOW,
                    succeeded=succeeded,
                    duration_ms=5,
                )
            )
    assert await book.failures_in_a_row("w1") == 2
    assert await book.failures_in_a_row("w2") == 1


async def test_cancelling_a_webhooks_deliveries_leaves_the_one_being_sent(
    book: SqlDeliveries,
) -> None:
    await book.add([new("w1", "e1"), new("w1", "e2", 2)])
    (held,) = await book.claim(now=NOW, until=LATER, token="a.1", limit=1)
    await book.add([new("w2", "e1")])
    await book.cancel_pending("w1", now=NOW, reason="disabled")
    statuses = {row[0]: row[1] for row in await rows(book)}
    assert statuses[held.id] == "PENDING"
    assert statuses["w2-e1"] == "PENDING"
    assert list(statuses.values()).count("CANCELLED") == 1
    await book.release("a")
    assert [row[2] for row in await rows(book)] == [None, None, None]
