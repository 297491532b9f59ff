"""A GraphQL websocket client for tests, on either subprotocol, every receive bounded, and the
order-side calls (over HTTP) that the subscription tests make events with."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from tests.graphql_client import JSON, STAFF_TOKEN, GraphQLClient

TRANSPORT_WS = Subprotocol("graphql-transport-ws")
LEGACY_WS = Subprotocol("graphql-ws")
WAIT = 10
"""Seconds any one websocket receive may take: a broken server fails the test, not hangs it."""

ORDER_EVENTS = """subscription Watch($orderId: ID, $customerId: ID, $after: String) {
    orderEvents(orderId: $orderId, customerId: $customerId, after: $after) {
        position occurredAt type
        order { id status version customer { id name } lines { productName quantity } }
    }
}"""
PRODUCT_EVENTS = """subscription Watch($after: String) {
    productEvents(after: $after) { position type product { id stock } }
}"""


class Socket:
    """A websocket speaking one GraphQL subprotocol, every receive bounded by WAIT."""

    def __init__(self, connection: ClientConnection, protocol: Subprotocol) -> None:
        self.connection = connection
        self.protocol = protocol
        self.pings = 0

    @property
    def legacy(self) -> bool:
        return self.protocol == LEGACY_WS

    async def send(self, message: JSON | str) -> None:
        await self.connection.send(message if isinstance(message, str) else json.dumps(message))

    async def receive_raw(self, wait: float = WAIT) -> JSON:
        async with asyncio.timeout(wait):
            frame = await self.connection.recv()
        assert isinstance(frame, str), frame
        message = json.loads(frame)
        assert isinstance(message, dict), message
        return message

    async def receive(self, wait: float = WAIT) -> JSON:
        """The next protocol message, keep-alives (`ka`, server `ping`) answered and skipped.

        `wait` bounds the whole call: keep-alives arriving must not keep it waiting forever.
        """
        async with asyncio.timeout(wait):
            while True:
                message = await self.receive_raw(wait)
                if self.legacy and message.get("type") == "ka":
                    continue
                if not self.legacy and message.get("type") == "ping":
                    self.pings += 1
                    await self.send({"type": "pong"})
                    continue
                return message

    async def init(self, token: str | None = STAFF_TOKEN) -> None:
        payload = {"Authorization": f"Bearer {token}"} if token else {}
        await self.send({"type": "connection_init", "payload": payload})
        assert await self.receive() == {"type": "connection_ack"}

    async def subscribe(self, op_id: str, query: str = ORDER_EVENTS, **variables: str) -> None:
        start = "start" if self.legacy else "subscribe"
        payload = {"query": query, "variables": variables}
        await self.send({"id": op_id, "type": start, "payload": payload})

    async def next_data(self, op_id: str, field: str = "orderEvents", wait: float = WAIT) -> JSON:
        """The next message must be an event, without errors, of the operation `op_id`."""
        message = await self.receive(wait)
        assert message["type"] == ("data" if self.legacy else "next"), message
        assert message["id"] == op_id, message
        assert set(message["payload"]) == {"data"}, message
        event: JSON = message["payload"]["data"][field]
        return event

    async def closed(self, wait: float = WAIT) -> tuple[int, str]:
        """Wait for the server to close the socket (skipping keep-alives); its code, reason."""
        try:
            while True:
                message = await self.receive(wait)
                pytest.fail(f"the server should have closed the socket, it sent {message!r}")
        except ConnectionClosed as error:
            close = error.rcvd
        assert close is not None, "the socket dropped without a close frame"
        return close.code, close.reason


@asynccontextmanager
async def open_socket(
    ws_url: str, protocol: Subprotocol = TRANSPORT_WS, **options: Any
) -> AsyncIterator[Socket]:
    async with connect(
        ws_url, subprotocols=[protocol], open_timeout=WAIT, close_timeout=WAIT, **options
    ) as connection:
        assert connection.subprotocol == protocol
        yield Socket(connection, protocol)


# ---------------------------------------------------------------- the order side, over HTTP

ERRORS = "__typename ... on Error { message }"
ADDRESS = {"street": "1 Main St", "city": "Springfield", "postalCode": "12345", "country": "US"}


async def register(client: GraphQLClient, name: str) -> tuple[str, str]:
    """A new customer's global id and bearer token."""
    result = (
        await client.anonymous().execute(
            """mutation($input: RegisterCustomerInput!) { registerCustomer(input: $input) {
                __typename ... on RegisterCustomerSuccess { accessToken customer { id } } } }""",
            {"input": {"name": name, "email": f"{name.lower()}@example.com"}},
        )
    )["registerCustomer"]
    assert result["__typename"] == "RegisterCustomerSuccess", result
    return result["customer"]["id"], result["accessToken"]


async def new_product(client: GraphQLClient, sku: str, stock: int = 1_000) -> str:
    result = await client.execute(
        """mutation($input: CreateProductInput!) { createProduct(input: $input) {
            __typename ... on CreateProductSuccess { product { id } } } }""",
        {"input": {"sku": sku, "name": sku.title(), "price": "2.50", "stock": stock}},
    )
    product_id: str = result["createProduct"]["product"]["id"]
    return product_id


async def place_order(client: GraphQLClient, product_id: str, quantity: int = 1) -> JSON:
    """Place an order as the client's customer; the order's id, status and version."""
    result = (
        await client.execute(
            f"""mutation($input: PlaceOrderInput!) {{ placeOrder(input: $input) {{
                {ERRORS} ... on PlaceOrderSuccess {{ order {{ id status version }} }} }} }}""",
            {
                "input": {
                    "lines": [{"productId": product_id, "quantity": quantity}],
                    "shippingAddress": ADDRESS,
                }
            },
        )
    )["placeOrder"]
    assert result["__typename"] == "PlaceOrderSuccess", result
    order: JSON = result["order"]
    return order


async def move_order(client: GraphQLClient, mutation: str, order_id: str) -> JSON:
    """confirmOrder, shipOrder, deliverOrder or cancelOrder; the order's status and version."""
    input_type = "CancelOrderInput" if mutation == "cancelOrder" else "ChangeOrderInput"
    success = mutation[0].upper() + mutation[1:] + "Success"
    result = (
        await client.execute(
            f"""mutation($input: {input_type}!) {{ {mutation}(input: $input) {{
                {ERRORS} ... on {success} {{ order {{ id status version }} }} }} }}""",
            {"input": {"id": order_id}},
        )
    )[mutation]
    assert result["__typename"] == success, result
    order: JSON = result["order"]
    return order
