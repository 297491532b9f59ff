"""Pending orders expire in a served app (ORDERDESK_PENDING_ORDER_TTL): a placed order nobody
confirmed is cancelled as expired after the TTL, its stock back, its cancel caused by the
OrderPlaced event in the placing request's correlation; one confirmed first stays confirmed;
an expiry survives a restart and is done once; two apps on one database cancel once."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from orderdesk.settings import Settings
from persistence.tables import event_log, order_expiries
from schema.ids import local_id
from tests.databases import postgres_database_url, sqlite_settings
from tests.graphql_client import TEST_SECRET, GraphQLClient
from tests.served import Served, serve
from tests.ws_client import ADDRESS, ERRORS, move_order, new_product, register

TTL = 1.0
POLL = 0.1
WITHIN = 15.0
"""Seconds an expiry may take past its due time before a test gives up on it."""

PLACE = f"""mutation($input: PlaceOrderInput!) {{ placeOrder(input: $input) {{
    {ERRORS} ... on PlaceOrderSuccess {{ order {{ id status version }} }} }} }}"""
STATUS = "query($id: ID!) { order(id: $id) { status } }"
STOCK = "query($id: ID!) { product(id: $id) { stock } }"


def expiring(tmp_path: Path, ttl: float = TTL, **overrides: Any) -> Settings:
    return sqlite_settings(
        tmp_path, pending_order_ttl=f"{ttl:g}", poll_interval=POLL, query_cache=False, **overrides
    )


@asynccontextmanager
async def client_of(served: Served) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(timeout=30) as http:
        yield GraphQLClient(http, served)


async def place(
    client: GraphQLClient, token: str, product_id: str, quantity: int
) -> tuple[str, str]:
    """Place an order as the customer of `token`; its global id and the request's id."""
    request = f"expiry-{uuid.uuid4().hex}"
    given = {"lines": [{"productId": product_id, "quantity": quantity}], "shippingAddress": ADDRESS}
    response = await client.as_customer(token).post(
        PLACE, {"input": given}, headers={"X-Request-ID": request}
    )
    assert response.status_code == 200, response.text
    assert response.headers["X-Request-ID"] == request
    result = response.json()["data"]["placeOrder"]
    assert result["__typename"] == "PlaceOrderSuccess", result
    assert result["order"]["status"] == "PENDING"
    order_id: str = result["order"]["id"]
    return order_id, request


async def status(client: GraphQLClient, order_id: str) -> str:
    found: str = (await client.execute(STATUS, {"id": order_id}))["order"]["status"]
    return found


async def stock(client: GraphQLClient, product_id: str) -> int:
    found: int = (await client.execute(STOCK, {"id": product_id}))["product"]["stock"]
    return found


async def until_status(client: GraphQLClient, order_id: str, wanted: str) -> None:
    deadline = time.monotonic() + TTL + WITHIN
    while (now := await status(client, order_id)) != wanted:
        assert time.monotonic() < deadline, f"order still {now}, not {wanted}"
        await asyncio.sleep(0.05)


async def order_events(settings: Settings, order_id: str) -> list[Any]:
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                select(event_log)
                .where(event_log.c.stream_id == local_id(order_id, "Order"))
                .order_by(event_log.c.position)
            )
            return list(rows)
    finally:
        await engine.dispose()


async def expiry_row(settings: Settings, order_id: str) -> Any:
    engine = create_async_engine(settings.read_models_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                select(order_expiries).where(
                    order_expiries.c.order_id == local_id(order_id, "Order")
                )
            )
            return rows.first()
    finally:
        await engine.dispose()


async def until_settled(settings: Settings, order_id: str) -> Any:
    deadline = time.monotonic() + WITHIN
    while (row := await expiry_row(settings, order_id)) is None or row.settled_at is None:
        assert time.monotonic() < deadline, f"the order's due row is not settled: {row}"
        await asyncio.sleep(0.05)
    return row


def kinds(events: list[Any]) -> list[str]:
    return [event.event_type for event in events]


async def a_customer_and_a_product(client: GraphQLClient, stock_of: int = 10) -> tuple[str, str]:
    _, token = await register(client, f"Shopper{uuid.uuid4().hex[:8]}")
    product_id = await new_product(client, f"SKU-{uuid.uuid4().hex[:8]}", stock=stock_of)
    return token, product_id


# ---------------------------------------------------------------- one app


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return expiring(tmp_path)


@pytest.fixture
async def client(served: Served) -> AsyncIterator[GraphQLClient]:
    async with client_of(served) as made:
        yield made


async def test_a_pending_order_is_cancelled_as_expired_after_the_ttl_and_its_stock_is_back(
    client: GraphQLClient, settings: Settings
) -> None:
    token, product_id = await a_customer_and_a_product(client)
    order_id, request = await place(client, token, product_id, 3)
    assert await stock(client, product_id) == 7

    await until_status(client, order_id, "CANCELLED")
    assert await stock(client, product_id) == 10
    events = await order_events(settings, order_id)
    assert kinds(events) == ["OrderPlaced", "OrderCancelled"]
    placed, cancelled = events
    assert cancelled.payload["reason"] == "expired"
    assert cancelled.occurred_at - placed.occurred_at >= timedelta(seconds=TTL)
    # The cancel records its cause, and the request the whole chain began with.
    assert cancelled.causation_id == placed.event_id
    assert cancelled.correlation_id == placed.correlation_id == request
    assert cancelled.command == "CancelOrder"
    row = await until_settled(settings, order_id)
    assert row.outcome == "cancelled"


async def test_an_order_confirmed_before_the_ttl_stays_confirmed(
    client: GraphQLClient, settings: Settings
) -> None:
    token, product_id = await a_customer_and_a_product(client)
    order_id, _ = await place(client, token, product_id, 2)
    assert (await move_order(client, "confirmOrder", order_id))["status"] == "CONFIRMED"
    row = await until_settled(settings, order_id)
    assert row.outcome == "left alone: confirmed"
    # Well past its due time, and several of the timer's rounds later.
    await asyncio.sleep(max(0.0, (row.due_at - datetime.now(UTC)).total_seconds()) + 5 * POLL)
    assert await status(client, order_id) == "CONFIRMED"
    assert kinds(await order_events(settings, order_id)) == ["OrderPlaced", "OrderConfirmed"]
    assert await stock(client, product_id) == 8


# ---------------------------------------------------------------- restarts and two apps


async def test_an_expiry_survives_a_restart_and_happens_once(tmp_path: Path) -> None:
    ttl = 3.0
    settings = expiring(tmp_path, ttl=ttl)
    with serve(settings) as first:
        async with client_of(first) as client:
            token, product_id = await a_customer_and_a_product(client)
            order_id, _ = await place(client, token, product_id, 4)
            placed_at = time.monotonic()
    # Stopped before the order was due: no timer of it is left anywhere but in the tables.
    assert time.monotonic() - placed_at < ttl, "the app took too long to stop for this test"
    assert kinds(await order_events(settings, order_id)) == ["OrderPlaced"]
    await asyncio.sleep(max(0.0, placed_at + ttl - time.monotonic()) + 0.2)

    with serve(settings) as second:
        async with client_of(second) as client:
            await until_status(client, order_id, "CANCELLED")
            assert await stock(client, product_id) == 10
            await asyncio.sleep(5 * POLL)
    assert kinds(await order_events(settings, order_id)) == ["OrderPlaced", "OrderCancelled"]
    assert (await expiry_row(settings, order_id)).outcome == "cancelled"

    # And a third start finds nothing left to do.
    with serve(settings) as third:
        async with client_of(third) as client:
            await asyncio.sleep(5 * POLL)
            assert await status(client, order_id) == "CANCELLED"
    assert kinds(await order_events(settings, order_id)) == ["OrderPlaced", "OrderCancelled"]


ORDERS = 6


async def _two_apps_cancel_each_order_once(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="orderdesk")
    with ExitStack() as stack:
        first = stack.enter_context(serve(settings))
        second = stack.enter_context(serve(settings))
        async with client_of(first) as one, client_of(second) as other:
            token, product_id = await a_customer_and_a_product(one, stock_of=100)
            orders = [
                await place(one if n % 2 else other, token, product_id, 1) for n in range(ORDERS)
            ]
            for order_id, _ in orders:
                await until_status(one, order_id, "CANCELLED")
            await asyncio.sleep(5 * POLL)
            assert await stock(other, product_id) == 100
    for order_id, _ in orders:
        assert kinds(await order_events(settings, order_id)) == ["OrderPlaced", "OrderCancelled"]
        assert (await expiry_row(settings, order_id)).outcome == "cancelled"
    # Each due row was claimed by one timer: no cancel was sent twice, even to be refused.
    sent = [r.getMessage() for r in caplog.records if r.getMessage().startswith("CancelOrder")]
    assert len(sent) == ORDERS, sent
    assert all(" ok " in line for line in sent), sent


async def test_two_apps_on_one_database_cancel_each_order_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await _two_apps_cancel_each_order_once(expiring(tmp_path), caplog)


@pytest.mark.postgres
async def test_two_apps_on_postgres_cancel_each_order_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with postgres_database_url() as url:
        settings = Settings(
            database_url=url,
            poll_interval=POLL,
            jwt_secret=SecretStr(TEST_SECRET),
            pending_order_ttl=f"{TTL:g}",
            query_cache=False,
        )
        await _two_apps_cancel_each_order_once(settings, caplog)
