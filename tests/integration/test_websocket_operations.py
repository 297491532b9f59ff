"""Queries and mutations over a websocket: operations on one socket never share state."""

from __future__ import annotations

import asyncio

from tests.graphql_client import GraphQLClient
from tests.served import Served
from tests.ws_client import ADDRESS, new_product, open_socket, register

PLACE = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) {
    __typename ... on Error { message } ... on PlaceOrderSuccess { order { id lineCount } } } }"""
STOCK = "query($id: ID!) { product(id: $id) { stock } }"


async def results(socket: object, ids: set[str]) -> dict[str, dict[str, object]]:
    found: dict[str, dict[str, object]] = {}
    receive = socket.receive  # type: ignore[attr-defined]
    while len(found) < len(ids) or any(m.get("type") != "complete" for m in found.values()):
        message = await receive()
        if message["type"] == "next":
            found[message["id"]] = message["payload"]["data"]
        elif message["type"] == "complete":
            found.setdefault(message["id"], {"type": "complete"})
            if all(i in found for i in ids):
                return found
        else:
            raise AssertionError(message)
    return found


async def test_concurrent_mutations_on_one_socket_keep_their_own_idempotency_keys(
    served: Served, client: GraphQLClient
) -> None:
    product = await new_product(client, "P-1", stock=100)
    _, token = await register(client, "Ada")
    async with open_socket(served.ws_url) as socket:
        await socket.init(token)
        # Staggered so that each starts while the one before is inside its transaction.
        for op_id, key, quantity in (("a", "KEY-A", 1), ("b", None, 7), ("c", "KEY-C", 2)):
            variables = {
                "input": {
                    "lines": [{"productId": product, "quantity": quantity}],
                    "shippingAddress": ADDRESS,
                    "idempotencyKey": key,
                }
            }
            await socket.send(
                {
                    "id": op_id,
                    "type": "subscribe",
                    "payload": {"query": PLACE, "variables": variables},
                }
            )
        placed = await asyncio.wait_for(results(socket, {"a", "b", "c"}), 30)
    kinds = {op: data["placeOrder"]["__typename"] for op, data in placed.items()}  # type: ignore[index]
    assert kinds == {"a": "PlaceOrderSuccess", "b": "PlaceOrderSuccess", "c": "PlaceOrderSuccess"}
    orders = {data["placeOrder"]["order"]["id"] for data in placed.values()}  # type: ignore[index]
    assert len(orders) == 3
    stock = (await client.execute(STOCK, {"id": product}))["product"]["stock"]
    assert stock == 100 - 1 - 7 - 2


async def test_queries_on_a_long_lived_socket_see_new_writes(
    served: Served, client: GraphQLClient
) -> None:
    product = await new_product(client, "P-1", stock=1)
    async with open_socket(served.ws_url) as socket:
        await socket.init()
        for op_id, expected in (("1", 1), ("2", 6)):
            await socket.send(
                {
                    "id": op_id,
                    "type": "subscribe",
                    "payload": {"query": STOCK, "variables": {"id": product}},
                }
            )
            message = await socket.receive()
            assert message["payload"]["data"]["product"]["stock"] == expected, message
            assert await socket.receive() == {"id": op_id, "type": "complete"}
            await client.execute(
                """mutation($id: ID!) { restockProduct(input: {id: $id, quantity: 5}) {
                    __typename } }""",
                {"id": product},
            )
