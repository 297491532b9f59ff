"""The golden path, end to end, as a shop runs it: `orderdesk serve` started from the command
line on a fresh database, a staff token from `orderdesk token --staff`, a product, and a
customer who registers, watches its orders over a websocket and places one, which staff then
confirm, ship and deliver. Then the server is stopped and started again on the same
database: everything written reads back the same, and a subscriber resuming after the first
event gets exactly the later ones."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.databases import postgres_database_url, sqlite_url
from tests.graphql_client import JSON, TEST_SECRET, GraphQLClient
from tests.served_processes import ServedProcess, console_script, serve_process
from tests.ws_client import ADDRESS, ERRORS, Socket, move_order, open_socket, place_order

PRICE = "19.50"
STOCK = 5
QUANTITY = 2
TOTAL = "39.00"
"""QUANTITY at PRICE."""
MOVES = {"confirmOrder": "CONFIRMED", "shipOrder": "SHIPPED", "deliverOrder": "DELIVERED"}
"""Staff's mutations after the order is placed, in order, each with the status it leads to
(which is also the type of the event it makes)."""
GRACEFUL_EXITS = {0}
"""How `orderdesk serve` ends after SIGTERM once it has shut down: 0, a clean exit to any
supervisor. A server still running at the stop's bound is killed, and ends with -SIGKILL."""
SHUTDOWN_COMPLETE = "Application shutdown complete."
"""What uvicorn prints once the lifespan shutdown (projector, tail, engines) is done."""
WATCH = "my-orders"
"""The id of the orderEvents subscription on the customer's socket."""

CREATE_PRODUCT = f"""mutation($input: CreateProductInput!) {{ createProduct(input: $input) {{
    {ERRORS}
    ... on CreateProductSuccess {{ product {{ id sku stock version price {{ amount currency }} }} }}
}} }}"""
REGISTER_CUSTOMER = f"""mutation($input: RegisterCustomerInput!) {{
    registerCustomer(input: $input) {{
        {ERRORS}
        ... on RegisterCustomerSuccess {{
            accessToken replayed
            customer {{ id name email orderCount lifetimeValue {{ amount currency }} }}
        }}
    }}
}}"""
READ_BACK = """query ReadBack($order: ID!, $product: ID!) {
    node(id: $order) {
        __typename
        ... on Order {
            id status version placedAt lineCount
            total { amount currency }
            shippingAddress { street city postalCode country }
            customer { id name }
            lines { productName quantity unitPrice { amount } lineTotal { amount } product { id } }
        }
    }
    product(id: $product) { id stock }
    me { id orderCount lifetimeValue { amount currency } }
}"""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh database: a SQLite file in tmp_path, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    async with postgres_database_url() as url:
        yield url


@pytest.fixture
def staff_token(tmp_path: Path) -> str:
    """What an operator does: `orderdesk token --staff`, with the server's secret."""
    issued = subprocess.run(
        [console_script(), "token", "--staff"],
        env={**os.environ, "ORDERDESK_JWT_SECRET": TEST_SECRET},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()
    assert token.count(".") == 2, issued.stdout  # a JWT: header, claims, signature
    return token


@asynccontextmanager
async def orderdesk_serve(database_url: str, log_path: Path) -> AsyncIterator[ServedProcess]:
    """`orderdesk serve` until the block ends, then stopped with SIGTERM: it must shut down
    completely and exit by itself, without a traceback."""
    async with serve_process(database_url, log_path) as running:
        yield running
    assert running.process.returncode in GRACEFUL_EXITS, running.log_tail()
    assert running.log().count(SHUTDOWN_COMPLETE) == 1, running.log_tail()
    assert "Traceback" not in running.log(), running.log_tail()


# ------------------------------------------------------------------ the steps


async def create_product(staff: GraphQLClient) -> JSON:
    result = (
        await staff.execute(
            CREATE_PRODUCT,
            {"input": {"sku": "ANV-1", "name": "Anvil", "price": PRICE, "stock": STOCK}},
        )
    )["createProduct"]
    assert result["__typename"] == "CreateProductSuccess", result
    product: JSON = result["product"]
    assert without(product, "id") == {
        "sku": "ANV-1",
        "stock": STOCK,
        "version": 1,
        "price": {"amount": PRICE, "currency": "USD"},
    }
    return product


async def register_customer(anyone: GraphQLClient) -> tuple[JSON, str]:
    """The new customer and the bearer token its registration answers with."""
    result = (
        await anyone.execute(
            REGISTER_CUSTOMER,
            {"input": {"name": "Ada", "email": "ada@example.com", "idempotencyKey": "signup-ada"}},
        )
    )["registerCustomer"]
    assert result["__typename"] == "RegisterCustomerSuccess", result
    assert result["replayed"] is False
    assert isinstance(result["accessToken"], str), result
    customer: JSON = result["customer"]
    assert without(customer, "id") == {
        "name": "Ada",
        "email": "ada@example.com",
        "orderCount": 0,
        "lifetimeValue": {"amount": "0.00", "currency": "USD"},
    }
    return customer, result["accessToken"]


async def watch_orders(socket: Socket, token: str) -> None:
    """Subscribe to the caller's orderEvents from now on. The server reads a socket's messages
    in order, so once a ping sent after the subscription is answered, the subscription has
    started: it joins the event tail within a few turns of the server's loop, long before an
    order placed after it reaches the tail."""
    await socket.init(token)
    await socket.subscribe(WATCH)
    await socket.send({"type": "ping"})
    assert await socket.receive() == {"type": "pong"}


async def next_order_event(socket: Socket, event_type: str, order: JSON) -> JSON:
    """The next event must be `event_type` of `order`, showing it as its mutation answered."""
    event = await socket.next_data(WATCH)
    shown = event["order"]
    assert (event["type"], shown["id"], shown["status"], shown["version"]) == (
        event_type,
        order["id"],
        order["status"],
        order["version"],
    ), event
    return event


async def read_back(customer: GraphQLClient, order_id: str, product_id: str) -> JSON:
    return await customer.execute(READ_BACK, {"order": order_id, "product": product_id})


def without(fields: JSON, *names: str) -> JSON:
    return {name: value for name, value in fields.items() if name not in names}


def positions(events: list[JSON]) -> list[int]:
    return [int(event["position"]) for event in events]


# ------------------------------------------------------------------ the walk


async def test_the_golden_path_then_a_restart_on_the_same_database(
    database_url: str, staff_token: str, tmp_path: Path
) -> None:
    async with (
        orderdesk_serve(database_url, tmp_path / "first-start.log") as server,
        httpx.AsyncClient(timeout=30) as http,
    ):
        staff = GraphQLClient(http, server.served, staff_token)
        product = await create_product(staff)
        customer, customer_token = await register_customer(staff.anonymous())
        ada = staff.as_customer(customer_token)

        async with open_socket(server.served.ws_url) as socket:
            await watch_orders(socket, customer_token)
            order = await place_order(ada, product["id"], QUANTITY)
            assert (order["status"], order["version"]) == ("PENDING", 1)
            events = [await next_order_event(socket, "PLACED", order)]
            for mutation, status in MOVES.items():
                moved = await move_order(staff, mutation, order["id"])
                assert moved == {"id": order["id"], "status": status, "version": len(events) + 1}
                events.append(await next_order_event(socket, status, moved))

        assert [event["type"] for event in events] == ["PLACED", *MOVES.values()]
        assert positions(events) == sorted(set(positions(events))), events
        assert {event["order"]["customer"]["id"] for event in events} == {customer["id"]}
        assert events[0]["order"]["lines"] == [{"productName": "Anvil", "quantity": QUANTITY}]

        stored = await read_back(ada, order["id"], product["id"])
        assert datetime.fromisoformat(stored["node"]["placedAt"]).tzinfo is not None, stored
        assert without(stored, "node") == {
            "product": {"id": product["id"], "stock": STOCK - QUANTITY},
            "me": {
                "id": customer["id"],
                "orderCount": 1,
                "lifetimeValue": {"amount": TOTAL, "currency": "USD"},
            },
        }
        assert without(stored["node"], "placedAt") == {
            "__typename": "Order",
            "id": order["id"],
            "status": "DELIVERED",
            "version": 1 + len(MOVES),
            "lineCount": 1,
            "total": {"amount": TOTAL, "currency": "USD"},
            "shippingAddress": ADDRESS,
            "customer": {"id": customer["id"], "name": "Ada"},
            "lines": [
                {
                    "productName": "Anvil",
                    "quantity": QUANTITY,
                    "unitPrice": {"amount": PRICE},
                    "lineTotal": {"amount": TOTAL},
                    "product": {"id": product["id"]},
                }
            ],
        }

    async with (
        orderdesk_serve(database_url, tmp_path / "second-start.log") as server,
        httpx.AsyncClient(timeout=30) as http,
    ):
        ada = GraphQLClient(http, server.served, customer_token)
        assert await read_back(ada, order["id"], product["id"]) == stored

        async with open_socket(server.served.ws_url) as socket:
            await socket.init(customer_token)
            await socket.subscribe(WATCH, after=events[0]["position"])
            delivered = {"id": order["id"], "status": "DELIVERED", "version": 1 + len(MOVES)}
            # Replayed events show the order as it reads now: delivered.
            replayed = [await next_order_event(socket, e["type"], delivered) for e in events[1:]]
            assert positions(replayed) == positions(events[1:])
            # Nothing comes twice after the replay: the next event is the next change.
            another = await place_order(ada, product["id"], 1)
            next_change = await next_order_event(socket, "PLACED", another)
            assert int(next_change["position"]) > int(events[-1]["position"])
