"""The order emails and the low-stock alert, from a served app on SQLite to a real SMTP
server in the test: what arrives, to whom, how often, and after a server that refused."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from orderdesk.settings import Settings
from tests.databases import sqlite_settings
from tests.graphql_client import JSON, GraphQLClient
from tests.mail_server import MailServer
from tests.read_side import ADDRESS, CANCEL_ORDER, CONFIRM_ORDER, PLACE_ORDER, Shopper, register
from tests.served import Served, serve

STAFF = "staff@example.com"
THRESHOLD = 5
SHIP_ORDER = """mutation($input: ChangeOrderInput!) {
    shipOrder(input: $input) { __typename ... on Error { message } }
}"""
CREATE_PRODUCT = """mutation($input: CreateProductInput!) {
    createProduct(input: $input) {
        __typename ... on Error { message } ... on CreateProductSuccess { product { id } }
    }
}"""
RESTOCK = """mutation($input: RestockProductInput!) {
    restockProduct(input: $input) { __typename ... on Error { message } }
}"""


@pytest.fixture
def settings(tmp_path: Path, mail_server: MailServer) -> Settings:
    return sqlite_settings(
        tmp_path,
        smtp_url=SecretStr(mail_server.url),
        mail_from="Shop <shop@example.com>",
        staff_email=STAFF,
        low_stock_threshold=THRESHOLD,
    )


def subject_is(start: str, to: str | None = None) -> Callable[[EmailMessage], bool]:
    def matches(message: EmailMessage) -> bool:
        return str(message["Subject"]).startswith(start) and (to is None or message["To"] == to)

    return matches


def body(message: EmailMessage, kind: str = "plain") -> str:
    part = message.get_body((kind,))
    assert part is not None, f"no text/{kind} part"
    content: str = part.get_content()
    return content


async def create_product(client: GraphQLClient, sku: str, name: str, price: str, stock: int) -> str:
    values = {"sku": sku, "name": name, "price": price, "currency": "EUR", "stock": stock}
    result = (await client.execute(CREATE_PRODUCT, {"input": values}))["createProduct"]
    assert result["__typename"] == "CreateProductSuccess", result
    product_id: str = result["product"]["id"]
    return product_id


async def place(client: GraphQLClient, shopper: Shopper, *lines: tuple[str, int]) -> str:
    payload: JSON = {
        "customerId": shopper.id,
        "lines": [{"productId": product, "quantity": quantity} for product, quantity in lines],
        "shippingAddress": ADDRESS,
    }
    result = (await client.execute(PLACE_ORDER, {"input": payload}))["placeOrder"]
    assert result["__typename"] == "PlaceOrderSuccess", result
    order_id: str = result["order"]["id"]
    return order_id


async def move(client: GraphQLClient, mutation: str, name: str, values: JSON) -> None:
    result = (await client.execute(mutation, {"input": values}))[name]
    assert result["__typename"].endswith("Success"), result


async def test_a_placed_order_is_confirmed_by_email_with_its_lines_and_total(
    client: GraphQLClient, mail_server: MailServer
) -> None:
    ada = await register(client, "Ada")
    anvil = await create_product(client, "ANV", "Anvil", "5.00", 100)
    bolt = await create_product(client, "BLT", "Bolt <M8>", "0.25", 100)

    await place(client, ada, (anvil, 2), (bolt, 3))

    [email] = await mail_server.wait_for(subject_is("We have your order", "ada@example.com"))
    assert email["Subject"] == "We have your order (10.75 EUR)"
    assert email["From"] == "Shop <shop@example.com>"
    assert str(email["Message-ID"]).endswith("@example.com>")
    text = body(email)
    assert "2 x Anvil at 5.00 EUR: 10.00 EUR" in text
    assert "3 x Bolt <M8> at 0.25 EUR: 0.75 EUR" in text
    assert "Total: 10.75 EUR" in text
    assert "Bolt &lt;M8&gt;" in body(email, "html")


async def test_a_shipped_order_and_a_cancelled_one_are_told_by_email(
    client: GraphQLClient, mail_server: MailServer
) -> None:
    ada = await register(client, "Ada")
    anvil = await create_product(client, "ANV", "Anvil", "5.00", 100)
    shipped = await place(client, ada, (anvil, 1))
    cancelled = await place(client, ada, (anvil, 4))

    await move(client, CONFIRM_ORDER, "confirmOrder", {"id": shipped})
    await move(client, SHIP_ORDER, "shipOrder", {"id": shipped})
    await move(client, CANCEL_ORDER, "cancelOrder", {"id": cancelled, "reason": "ordered twice"})

    [shipping] = await mail_server.wait_for(subject_is("Your order is on its way"))
    assert shipping["To"] == "ada@example.com"
    assert "1 x Anvil at 5.00 EUR" in body(shipping)
    [cancellation] = await mail_server.wait_for(subject_is("Your order is cancelled"))
    assert cancellation["To"] == "ada@example.com"
    text = body(cancellation)
    assert "(reason: ordered twice)" in text
    assert "released" in text
    assert "4 x Anvil at 5.00 EUR: 20.00 EUR" in text
    await mail_server.wait_for(subject_is("We have your order"), count=2)


async def test_low_stock_is_one_alert_per_crossing_not_one_per_order(
    client: GraphQLClient, mail_server: MailServer
) -> None:
    ada = await register(client, "Ada")
    anvil = await create_product(client, "ANV", "Anvil", "5.00", THRESHOLD + 3)

    await place(client, ada, (anvil, 2))  # 8 → 6
    await place(client, ada, (anvil, 2))  # 6 → 4: crossed
    await place(client, ada, (anvil, 1))  # 4 → 3
    [alert] = await mail_server.wait_for(subject_is("Low stock"))
    assert alert["To"] == STAFF
    assert alert["Subject"] == "Low stock: Anvil (ANV) has 4 left"

    await move(client, RESTOCK, "restockProduct", {"id": anvil, "quantity": 10})  # 13
    await place(client, ada, (anvil, 9))  # 13 → 4: crossed again

    # The alerts come in log order, so once the second is here every order before it has
    # been looked at: there is no third on its way.
    first, second = await mail_server.wait_for(subject_is("Low stock"), count=2)
    assert second["Subject"] == "Low stock: Anvil (ANV) has 4 left"
    assert first["Message-ID"] != second["Message-ID"]
    assert len([m for m in mail_server.to(STAFF) if subject_is("Low stock")(m)]) == 2


async def test_an_email_the_server_refused_twice_arrives_once(
    client: GraphQLClient, mail_server: MailServer
) -> None:
    confirmation = subject_is("We have your order")
    mail_server.refuse_next(2, when=confirmation)
    ada = await register(client, "Ada")
    anvil = await create_product(client, "ANV", "Anvil", "5.00", 100)

    await place(client, ada, (anvil, 1))

    [email] = await mail_server.wait_for(confirmation)
    assert mail_server.refusals == 2
    # A second copy would follow at once if the retry's record were lost; give it the time.
    await asyncio.sleep(0.5)
    assert [m["Message-ID"] for m in mail_server.messages() if confirmation(m)] == [
        email["Message-ID"]
    ]


async def test_without_an_smtp_server_the_emails_are_files_in_the_outbox(
    tmp_path: Path,
) -> None:
    settings = sqlite_settings(tmp_path, outbox_dir=str(tmp_path / "mail"))
    with serve(settings) as served:
        await _place_one_order(served)
        await _until(lambda: any(_outbox_subjects(tmp_path / "mail", "We have your order")))

    [path] = _outbox_subjects(tmp_path / "mail", "We have your order")
    assert path.suffix == ".eml"


async def _place_one_order(served: Served) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        client = GraphQLClient(http, served)
        ada = await register(client, "Ada")
        anvil = await create_product(client, "ANV", "Anvil", "5.00", 100)
        await place(client, ada, (anvil, 1))


def _outbox_subjects(folder: Path, subject: str) -> list[Path]:
    if not folder.is_dir():
        return []
    return [
        path for path in folder.glob("*.eml") if f"Subject: {subject}".encode() in path.read_bytes()
    ]


async def _until(condition: Callable[[], bool], within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while True:
            if condition():
                return
            await asyncio.sleep(0.05)
