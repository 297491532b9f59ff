"""The orderEvents subscription over real websockets against the served app: live events,
resuming across a reconnect, who sees which orders, and a subscriber cut off for falling
behind while the others keep receiving."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.databases import sqlite_settings
from tests.graphql_client import JSON, GraphQLClient
from tests.served import Served, serve
from tests.ws_client import (
    LEGACY_WS,
    PRODUCT_EVENTS,
    TRANSPORT_WS,
    move_order,
    new_product,
    open_socket,
    place_order,
    register,
)


def positions(events: list[JSON]) -> list[int]:
    return [int(e["position"]) for e in events]


async def test_live_events_then_a_resume_across_a_reconnect_see_every_event_once_in_order(
    served: Served, client: GraphQLClient
) -> None:
    product = await new_product(client, "ANV-1")
    customer_id, token = await register(client, "Ada")
    ada = client.as_customer(token)
    async with open_socket(served.ws_url) as socket:
        await socket.init(token)
        await socket.subscribe("mine")
        placed = await place_order(ada, product, 2)
        first = await socket.next_data("mine")
        assert (first["type"], first["order"]["id"], first["order"]["status"]) == (
            "PLACED",
            placed["id"],
            "PENDING",
        )
        assert first["order"]["customer"]["id"] == customer_id
        assert first["order"]["lines"] == [{"productName": "Anv-1", "quantity": 2}]
        await move_order(client, "confirmOrder", placed["id"])
        confirmed = await socket.next_data("mine")
        assert (confirmed["type"], confirmed["order"]["version"]) == ("CONFIRMED", 2)

    # Disconnected: the order moves on, and a second order is placed and cancelled.
    await move_order(client, "shipOrder", placed["id"])
    await move_order(client, "deliverOrder", placed["id"])
    second = await place_order(ada, product)
    await move_order(ada, "cancelOrder", second["id"])

    async with open_socket(served.ws_url, LEGACY_WS) as socket:
        await socket.init(token)
        await socket.subscribe("mine", after=confirmed["position"])
        missed = [await socket.next_data("mine") for _ in range(4)]
        live_order = await place_order(ada, product)
        live = await socket.next_data("mine")
        # Nothing repeats after the live one either: the next message is the next change.
        await move_order(client, "confirmOrder", live_order["id"])
        last = await socket.next_data("mine")

    events = [first, confirmed, *missed, live, last]
    assert [(e["type"], e["order"]["id"]) for e in events] == [
        ("PLACED", placed["id"]),
        ("CONFIRMED", placed["id"]),
        ("SHIPPED", placed["id"]),
        ("DELIVERED", placed["id"]),
        ("PLACED", second["id"]),
        ("CANCELLED", second["id"]),
        ("PLACED", live_order["id"]),
        ("CONFIRMED", live_order["id"]),
    ]
    assert positions(events) == sorted(set(positions(events)))


async def test_a_customer_sees_its_own_orders_only(served: Served, client: GraphQLClient) -> None:
    product = await new_product(client, "ANV-1")
    ada_id, ada_token = await register(client, "Ada")
    bob_id, bob_token = await register(client, "Bob")
    ada, bob = client.as_customer(ada_token), client.as_customer(bob_token)
    bobs_first = await place_order(bob, product)

    async with open_socket(served.ws_url) as socket:
        await socket.init(ada_token)
        await socket.subscribe("all", after="0")
        await socket.subscribe("bobs-order", orderId=bobs_first["id"], after="0")
        await socket.subscribe("bob", customerId=bob_id)
        refused = await socket.receive()
        assert refused["id"] == "bob", refused
        assert refused["payload"]["data"] is None, refused
        assert [(e["message"], e["extensions"]["code"]) for e in refused["payload"]["errors"]] == [
            ("You may watch your own orders only", "FORBIDDEN")
        ]
        assert await socket.receive() == {"id": "bob", "type": "complete"}

        await move_order(client, "confirmOrder", bobs_first["id"])
        await place_order(bob, product)
        adas = await place_order(ada, product)
        # Ada's own order is the first thing she hears of: none of Bob's events, on either
        # the unfiltered subscription or the one naming Bob's order, came before it.
        event = await socket.next_data("all")
        assert (event["type"], event["order"]["id"]) == ("PLACED", adas["id"])
        assert event["order"]["customer"]["id"] == ada_id
        await socket.send({"id": "bobs-order", "type": "complete"})
        await socket.send({"id": "all", "type": "complete"})
        await socket.send({"type": "ping"})
        assert await socket.receive() == {"type": "pong"}

    # Staff see everyone's, and can narrow to one customer.
    async with open_socket(served.ws_url) as socket:
        await socket.init()
        await socket.subscribe("bob", customerId=bob_id, after="0")
        seen = [await socket.next_data("bob") for _ in range(3)]
        assert [e["type"] for e in seen] == ["PLACED", "CONFIRMED", "PLACED"]
        assert {e["order"]["customer"]["id"] for e in seen} == {bob_id}


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_anonymous_sockets_may_not_watch_orders(
    served: Served, protocol: str, client: GraphQLClient
) -> None:
    async with open_socket(served.ws_url, protocol) as socket:  # type: ignore[arg-type]
        await socket.init(None)
        await socket.subscribe("1")
        message = await socket.receive()
        assert message["type"] == ("data" if socket.legacy else "next"), message
        errors = message["payload"]["errors"]
        assert [(e["message"], e["extensions"]["code"]) for e in errors] == [
            ("Sign in to do this", "UNAUTHENTICATED")
        ]


async def test_ids_of_the_wrong_kind_are_bad_user_input(served: Served) -> None:
    product_id = base64.b64encode(b"Product:1").decode()
    async with open_socket(served.ws_url) as socket:
        await socket.init()
        await socket.subscribe("1", orderId=product_id)
        message = await socket.receive()
        assert (message["id"], message["type"]) == ("1", "error"), message
        assert [(e["message"], e["extensions"]["code"]) for e in message["payload"]] == [
            (f'"{product_id}" is a Product id, not an Order id', "BAD_USER_INPUT")
        ]


# ---------------------------------------------------------------- a subscriber falls behind


@pytest.fixture
def small_queues(tmp_path: Path) -> Iterator[Served]:
    settings = sqlite_settings(
        tmp_path,
        subscriber_queue_size=4,
    )
    with serve(settings) as running:
        yield running


async def test_a_subscriber_that_falls_behind_is_cut_off_and_the_others_keep_receiving(
    small_queues: Served,
) -> None:
    served = small_queues
    async with httpx.AsyncClient(timeout=30) as http:
        client = GraphQLClient(http, served)
        products = [await new_product(client, f"P-{n}") for n in range(10)]
        customer_id, _ = await register(client, "Ada")
        async with (
            open_socket(served.ws_url) as behind,
            open_socket(served.ws_url) as keeping_up,
        ):
            await behind.init()
            await keeping_up.init()
            await behind.subscribe("stock", PRODUCT_EVENTS, after="0")
            await keeping_up.subscribe("orders", after="0")
            for _ in range(10):  # the ten products' CREATED: both sockets are registered
                await behind.next_data("stock", "productEvents")
            # One order of ten lines commits eleven events at once: ten stock reservations
            # (product events) and the order placed. The product subscriber's queue of four
            # overflows before it could take any; the order subscriber needs one slot.
            result = await client.execute(
                """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) {
                    __typename ... on PlaceOrderSuccess { order { id } } } }""",
                {
                    "input": {
                        "customerId": customer_id,
                        "lines": [{"productId": p, "quantity": 1} for p in products],
                        "shippingAddress": {
                            "street": "1 Main St",
                            "city": "Springfield",
                            "postalCode": "12345",
                            "country": "US",
                        },
                    }
                },
            )
            order_id = result["placeOrder"]["order"]["id"]

            cut_off = await behind.receive()
            assert (cut_off["id"], cut_off["type"]) == ("stock", "next"), cut_off
            assert cut_off["payload"]["data"] is None
            [error] = cut_off["payload"]["errors"]
            resume_after = error["extensions"]["resumeAfter"]
            assert error["extensions"]["code"] == "SUBSCRIBER_TOO_SLOW"
            assert error["message"] == (
                "the subscriber fell 4 events behind and was disconnected; "
                f'resume with after: "{resume_after}"'
            )
            assert await behind.receive() == {"id": "stock", "type": "complete"}

            placed = await keeping_up.next_data("orders")
            assert (placed["type"], placed["order"]["id"]) == ("PLACED", order_id)
            await move_order(client, "confirmOrder", order_id)
            confirmed = await keeping_up.next_data("orders")
            assert confirmed["type"] == "CONFIRMED"

            # Resuming where the error said misses nothing: all ten reservations.
            await behind.subscribe("stock", PRODUCT_EVENTS, after=resume_after)
            resumed = [await behind.next_data("stock", "productEvents") for _ in range(10)]
            assert sorted(e["product"]["id"] for e in resumed) == sorted(products)
            assert {e["type"] for e in resumed} == {"UPDATED"}
            assert int(resumed[0]["position"]) == int(resume_after) + 1


# ---------------------------------------------------------------- many subscribers


@pytest.fixture
def crowded(tmp_path: Path) -> Iterator[Served]:
    # One test client stands for 500 clients: the caps per address and per caller would
    # (rightly) stop it at the 51st socket.
    settings = sqlite_settings(
        tmp_path,
        max_sockets_per_address=1_000,
        max_sockets_per_identity=1_000,
    )
    with serve(settings) as running:
        yield running


@pytest.fixture
async def crowded_client(crowded: Served) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(timeout=30) as http:
        yield GraphQLClient(http, crowded)


async def test_500_subscribers_on_one_process_all_receive_the_same_event(
    crowded: Served, crowded_client: GraphQLClient
) -> None:
    served, client = crowded, crowded_client
    subscribers = 500
    product = await new_product(client, "ANV-1")
    customer_id, token = await register(client, "Ada")

    async def one(index: int, ready: asyncio.Event, go: asyncio.Event) -> JSON:
        async with open_socket(served.ws_url) as socket:
            await socket.init()
            # From position 0, so that a subscription still registering when the order is
            # placed gets it by replay: once either way, which is what is checked.
            await socket.subscribe("orders", customerId=customer_id, after="0")
            # A ping answered after the subscribe: the server has read the subscribe.
            await socket.send({"type": "ping"})
            assert await socket.receive() == {"type": "pong"}
            ready.set()
            await go.wait()
            return await socket.next_data("orders", wait=30)

    go = asyncio.Event()
    readies = [asyncio.Event() for _ in range(subscribers)]
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(one(i, readies[i], go)) for i in range(subscribers)]
        async with asyncio.timeout(60):
            for ready in readies:
                await ready.wait()
        placed = await place_order(client.as_customer(token), product)
        go.set()
    events = [task.result() for task in tasks]
    assert {(e["type"], e["order"]["id"], e["position"]) for e in events} == {
        ("PLACED", placed["id"], events[0]["position"])
    }
