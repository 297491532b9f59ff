"""`orderdesk seed` and `orderdesk token --customer`, run as a newcomer runs them: the console
script on a fresh database, then the API served on that database and read over HTTP with the
tokens the commands printed."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine
from strawberry import relay

from orderdesk.seed import CUSTOMERS, ORDERS, PRODUCTS
from orderdesk.settings import Settings
from persistence.tables import event_log
from schema.ids import global_id
from tests.databases import postgres_database_url, sqlite_url
from tests.graphql_client import JSON, TEST_SECRET, GraphQLClient
from tests.served import serve
from tests.served_processes import console_script

PRODUCTS_QUERY = """{ products(first: 100, sort: NAME_ASC) {
    totalCount edges { node { id sku name stock price { amount currency } } }
} }"""
ME_QUERY = """{ me { id name email orderCount
    orders(first: 20) { totalCount edges { node { status total { amount } } } }
} }"""
ORDERS_QUERY = """{ orders(first: 100) {
    totalCount edges { node { status customer { email } lines { productName quantity } } }
} }"""
LOW_STOCK = "DK-FRAME-04"
"""The demo product its orders leave nearly sold out."""


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str

    @property
    def said(self) -> str:
        """Everything printed, with the boxes of the CLI's error panels and line wraps gone."""
        return " ".join(re.sub("[│╭╮╰╯─]", " ", self.stdout + self.stderr).split())


def orderdesk(database_url: str, cwd: Path, *arguments: str) -> Ran:
    """The console script, configured through the environment as a shell would have it."""
    finished = subprocess.run(
        [console_script(), *arguments],
        env={
            **os.environ,
            "ORDERDESK_DATABASE_URL": database_url,
            "ORDERDESK_JWT_SECRET": TEST_SECRET,
        },
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return Ran(finished.returncode, finished.stdout, finished.stderr)


async def run(database_url: str, cwd: Path, *arguments: str) -> Ran:
    return await asyncio.to_thread(orderdesk, database_url, cwd, *arguments)


@dataclass(frozen=True)
class Printed:
    """What `orderdesk seed` printed for the newcomer to paste."""

    staff_token: str
    customer_token: str
    customer_id: str
    url: str


def printed(ran: Ran) -> Printed:
    assert ran.returncode == 0, ran.stderr
    tokens = re.findall(r'\{"Authorization": "Bearer ([^"]+)"\}', ran.stdout)
    assert len(tokens) == 2, ran.stdout
    customer = re.search(r"id (\S+):", ran.stdout)
    url = re.search(r"(http://\S+/graphql)", ran.stdout)
    assert customer is not None, ran.stdout
    assert url is not None, ran.stdout
    return Printed(tokens[0], tokens[1], customer.group(1), url.group(1))


def settings_for(database_url: str) -> Settings:
    return Settings(database_url=database_url, poll_interval=0.2, jwt_secret=SecretStr(TEST_SECRET))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database: a SQLite file in tmp_path, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    async with postgres_database_url() as url:
        yield url


async def event_count(database_url: str) -> int:
    """How many events the log holds: what a refused seed must leave unchanged."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            return int((await connection.scalar(select(func.count()).select_from(event_log))) or 0)
    finally:
        await engine.dispose()


# ------------------------------------------------------------------ seed


async def test_seed_fills_an_empty_database_that_the_api_then_serves(
    database_url: str, tmp_path: Path
) -> None:
    seeded = printed(await run(database_url, tmp_path, "seed"))
    assert seeded.url == "http://127.0.0.1:8000/graphql"
    first = CUSTOMERS[0]

    with serve(settings_for(database_url)) as served:
        async with httpx.AsyncClient(timeout=30) as http:
            anyone = GraphQLClient(http, served, None)
            catalog = (await anyone.execute(PRODUCTS_QUERY))["products"]
            assert catalog["totalCount"] == len(PRODUCTS)
            products = {edge["node"]["sku"]: edge["node"] for edge in catalog["edges"]}
            assert set(products) == {p.sku for p in PRODUCTS}
            for demo in PRODUCTS:
                assert products[demo.sku]["name"] == demo.name
                assert products[demo.sku]["price"] == {
                    "amount": str(demo.price),
                    "currency": "USD",
                }
            # Stock reserved by the orders that hold it; the cancelled one gave its back.
            held = Counter[str]()
            for order in ORDERS:
                if order.status.value != "CANCELLED":
                    for sku, quantity in order.lines:
                        held[sku] += quantity
            for demo in PRODUCTS:
                assert products[demo.sku]["stock"] == demo.stock - held[demo.sku], demo.sku
            assert products[LOW_STOCK]["stock"] == 1

            customer = GraphQLClient(http, served, seeded.customer_token)
            me = (await customer.execute(ME_QUERY))["me"]
            own_orders = [o for o in ORDERS if o.customer == first.email]
            assert (me["id"], me["name"], me["email"]) == (
                seeded.customer_id,
                first.name,
                first.email,
            )
            assert me["orders"]["totalCount"] == len(own_orders)
            assert sorted(edge["node"]["status"] for edge in me["orders"]["edges"]) == sorted(
                o.status.value for o in own_orders
            )

            staff = GraphQLClient(http, served, seeded.staff_token)
            orders = (await staff.execute(ORDERS_QUERY))["orders"]
            assert orders["totalCount"] == len(ORDERS)
            statuses = Counter(edge["node"]["status"] for edge in orders["edges"])
            assert statuses == Counter(o.status.value for o in ORDERS)
            assert set(statuses) == {"PENDING", "CONFIRMED", "SHIPPED", "DELIVERED", "CANCELLED"}
            emails = {edge["node"]["customer"]["email"] for edge in orders["edges"]}
            assert emails == {c.email for c in CUSTOMERS}

            # The customer's token is a customer's: staff's list is not its to read.
            refused = await customer.post("{ customers(first: 5) { totalCount } }")
            assert refused.json()["data"] is None, refused.text


async def test_a_second_seed_refuses_and_changes_nothing(database_url: str, tmp_path: Path) -> None:
    printed(await run(database_url, tmp_path, "seed"))
    before = await event_count(database_url)

    again = await run(database_url, tmp_path, "seed")

    assert again.returncode == 1, again.said
    assert f"already holds {len(PRODUCTS)} products and {len(CUSTOMERS)} customers" in again.said, (
        again.said
    )
    assert "changed nothing" in again.said
    assert "Traceback" not in again.stderr, again.stderr
    assert "Bearer" not in again.stdout
    assert await event_count(database_url) == before


async def test_seed_refuses_a_database_with_customers_only(tmp_path: Path) -> None:
    """A database where only sign-ups happened is not empty either."""
    url = sqlite_url(tmp_path)
    with serve(settings_for(url)) as served:
        async with httpx.AsyncClient(timeout=30) as http:
            await register(GraphQLClient(http, served, None), "only@example.com")
    before = await event_count(url)

    refused = await run(url, tmp_path, "seed")

    assert refused.returncode == 1, refused.said
    assert "already holds 0 products and 1 customers" in refused.said
    assert await event_count(url) == before


async def test_seed_says_what_is_wrong_with_a_database_it_cannot_open(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'no such directory' / 'orderdesk.db'}"
    failed = await run(url, tmp_path, "seed")
    assert failed.returncode == 1, failed.said
    assert "check ORDERDESK_DATABASE_URL" in failed.said
    assert "Traceback" not in failed.stderr, failed.stderr


# ------------------------------------------------------------------ token --customer


async def register(anyone: GraphQLClient, email: str) -> str:
    result = (
        await anyone.execute(
            """mutation($input: RegisterCustomerInput!) { registerCustomer(input: $input) {
                __typename ... on RegisterCustomerSuccess { customer { id } }
            } }""",
            {"input": {"name": "Newcomer", "email": email}},
        )
    )["registerCustomer"]
    assert result["__typename"] == "RegisterCustomerSuccess", result
    customer_id: str = result["customer"]["id"]
    return customer_id


async def me(served_client: GraphQLClient, token: str) -> JSON:
    data: JSON = (await served_client.as_customer(token).execute("{ me { id email } }"))["me"]
    return data


async def test_token_for_a_seeded_customer_reads_as_that_customer(
    database_url: str, tmp_path: Path
) -> None:
    seeded = printed(await run(database_url, tmp_path, "seed"))

    issued = await run(database_url, tmp_path, "token", "--customer", seeded.customer_id)

    assert issued.returncode == 0, issued.said
    token = issued.stdout.strip()
    assert token.count(".") == 2, issued.stdout
    with serve(settings_for(database_url)) as served:
        async with httpx.AsyncClient(timeout=30) as http:
            read = await me(GraphQLClient(http, served), token)
    assert read == {"id": seeded.customer_id, "email": CUSTOMERS[0].email}


async def test_token_for_a_customer_who_registered_through_the_api(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    with serve(settings_for(url)) as served:
        async with httpx.AsyncClient(timeout=30) as http:
            client = GraphQLClient(http, served)
            customer_id = await register(client.anonymous(), "late@example.com")

            issued = await run(url, tmp_path, "token", "--customer", customer_id, "--days", "2")

            assert issued.returncode == 0, issued.said
            read = await me(client, issued.stdout.strip())
    assert read == {"id": customer_id, "email": "late@example.com"}


async def test_token_refuses_what_names_no_customer(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    seeded = printed(await run(url, tmp_path, "seed"))
    with serve(settings_for(url)) as served:
        async with httpx.AsyncClient(timeout=30) as http:
            catalog = await GraphQLClient(http, served, None).execute(PRODUCTS_QUERY)
    product_id = catalog["products"]["edges"][0]["node"]["id"]
    nobody = global_id("Customer", "0" * 32)
    local_id = relay.GlobalID.from_id(seeded.customer_id).node_id

    refusals = {
        product_id: (2, f"'{product_id}' is the id of a Product, not of a Customer"),
        "garbage": (2, "'garbage' is not an id the API gives"),
        # The id inside a global id is not what the API hands out.
        local_id: (2, "is not an id the API gives"),
        nobody: (1, f"no customer has the id {nobody}"),
    }
    for given, (code, message) in refusals.items():
        refused = await run(url, tmp_path, "token", "--customer", given)
        assert refused.returncode == code, (given, refused.said)
        assert message in refused.said, (given, refused.said)
        assert "eyJ" not in refused.stdout, refused.stdout  # no token, not even a part
        assert "Traceback" not in refused.stderr, refused.stderr


async def test_token_needs_a_migrated_database(tmp_path: Path) -> None:
    customer = global_id("Customer", "0" * 32)
    missing = tmp_path / "missing.db"
    refused = await run(f"sqlite+aiosqlite:///{missing}", tmp_path, "token", "--customer", customer)
    assert refused.returncode == 1, refused.said
    assert f"there is no database at {missing}" in refused.said
    assert not missing.exists()

    empty = tmp_path / "empty.db"
    empty.touch()
    refused = await run(f"sqlite+aiosqlite:///{empty}", tmp_path, "token", "--customer", customer)
    assert refused.returncode == 1, refused.said
    assert "is the database migrated? Run `orderdesk migrate`" in refused.said
    assert "Traceback" not in refused.stderr, refused.stderr
