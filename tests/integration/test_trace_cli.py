"""`orderdesk trace`: one placeOrder, followed through everything it caused. The order is
placed with a request id of the client's choosing, its confirmation email arrives, nobody
confirms it, and the pending-order expiry cancels it (a reaction's command, caused by the
OrderPlaced event) and mails the customer again: the trace shows each step, in order."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from orderdesk.cli import cli
from orderdesk.settings import Settings
from tests.databases import sqlite_settings
from tests.graphql_client import GraphQLClient
from tests.mail_server import MailServer
from tests.ws_client import ADDRESS, ERRORS, new_product, register

REQUEST_ID = "trace-me-0123456789"
PLACE = f"""mutation($input: PlaceOrderInput!) {{ placeOrder(input: $input) {{
    {ERRORS} ... on PlaceOrderSuccess {{ order {{ id }} }} }} }}"""
STATUS = "query($id: ID!) { order(id: $id) { status } }"


@pytest.fixture
def settings(tmp_path: Path, mail_server: MailServer) -> Settings:
    return sqlite_settings(tmp_path, smtp_url=SecretStr(mail_server.url), pending_order_ttl="1")


async def test_trace_prints_the_chain_of_one_place_order(
    client: GraphQLClient,
    settings: Settings,
    mail_server: MailServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    product = await new_product(client, "TRACED", stock=3)
    _, token = await register(client, "Ada")
    placed = await client.as_customer(token).post(
        PLACE,
        {"input": {"lines": [{"productId": product, "quantity": 2}], "shippingAddress": ADDRESS}},
        headers={"X-Request-ID": REQUEST_ID},
    )
    assert placed.headers["X-Request-ID"] == REQUEST_ID
    order_id = placed.json()["data"]["placeOrder"]["order"]["id"]
    async with asyncio.timeout(20):
        while (await client.execute(STATUS, {"id": order_id}))["order"]["status"] != "CANCELLED":  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    await mail_server.wait_for(lambda m: "ada@example.com" in str(m["To"]), count=3, timeout=20)

    monkeypatch.setenv("ORDERDESK_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ORDERDESK_JWT_SECRET", settings.jwt_secret.get_secret_value())  # type: ignore[union-attr]
    monkeypatch.setenv("ORDERDESK_SMTP_URL", mail_server.url)
    monkeypatch.setenv("ORDERDESK_PENDING_ORDER_TTL", "1")
    runner = CliRunner()
    async with asyncio.timeout(20):
        while True:
            shown = await asyncio.to_thread(runner.invoke, cli, ["trace", REQUEST_ID])
            assert shown.exit_code == 0, shown.output
            if "cancellation_email done" in shown.output:
                break
            await asyncio.sleep(0.2)
    lines = shown.output.splitlines()
    text = shown.output

    assert lines[0] == f"request {REQUEST_ID}: 2 commands, 4 events", text
    # The request's own command, its events, what applied them and what reacted to them.
    place = next(i for i, line in enumerate(lines) if line.startswith("PlaceOrder, at "))
    placed_event = next(line for line in lines if " OrderPlaced (Order " in line)
    assert lines.index(placed_event) > place
    assert "StockReserved (Product " in text
    assert "orders applied" in text
    assert "product_catalog applied" in text
    assert "orders.confirmation_email done" in text
    assert "orders.pending_expiry done" in text
    assert 'email to ada@example.com "' in text
    assert "expiry of order" in text
    assert ": cancelled" in text
    # The reaction's command, caused by the OrderPlaced event, after the request's own.
    number = placed_event.split()[0]
    cancel = next(
        i
        for i, line in enumerate(lines)
        if line.startswith(f"CancelOrder by a reaction to {number} OrderPlaced, at ")
    )
    assert cancel > lines.index(placed_event)
    assert any(" OrderCancelled (Order " in line for line in lines[cancel:])
    assert any(" StockReleased (Product " in line for line in lines[cancel:])
    assert "orders.cancellation_email done" in "\n".join(lines[cancel:])

    unknown = await asyncio.to_thread(runner.invoke, cli, ["trace", "nothing-like-it"])
    assert unknown.exit_code == 0
    assert "no event in the log has the correlation id nothing-like-it" in unknown.output
