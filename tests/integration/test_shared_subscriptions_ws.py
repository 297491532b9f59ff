"""Identical subscriptions share one execution, but never across callers: each socket still
sees exactly what its own caller may see."""

from __future__ import annotations

import asyncio

from tests.graphql_client import STAFF_TOKEN, GraphQLClient
from tests.served import Served
from tests.ws_client import (
    ORDER_EVENTS,
    move_order,
    new_product,
    open_socket,
    place_order,
    register,
)


async def tail_followers(served: Served, count: int) -> None:
    """Wait until the event tail has `count` subscribers: without a cursor, nothing else
    says that a subscription is in place before the next event."""
    async with asyncio.timeout(10):
        # The tail lives in the server thread's loop: polled, as no event can cross over.
        while served.services.tail.subscriber_count != count:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


LIVE_ORDER_EVENTS = """subscription {
    orderEvents { position type order { id status customer { name } } }
}"""


async def test_identical_subscriptions_by_different_callers_stay_apart(
    served: Served, client: GraphQLClient
) -> None:
    product = await new_product(client, "P-1")
    _, ada_token = await register(client, "Ada")
    _, bob_token = await register(client, "Bob")
    ada = client.as_customer(ada_token)
    bob = client.as_customer(bob_token)
    async with (
        open_socket(served.ws_url) as staff_one,
        open_socket(served.ws_url) as staff_two,
        open_socket(served.ws_url) as ada_socket,
    ):
        await staff_one.init(STAFF_TOKEN)
        await staff_two.init(STAFF_TOKEN)
        await ada_socket.init(ada_token)
        for socket in (staff_one, staff_two, ada_socket):
            await socket.subscribe("live", LIVE_ORDER_EVENTS)
        # Staff share one group; Ada's is her own: two followers of the event tail.
        await tail_followers(served, 2)
        # Without a cursor nothing confirms a subscription is registered: a first event
        # that every socket sees (Ada's own order) proves all three are.
        ada_order = await place_order(ada, product)
        for socket in (staff_one, staff_two, ada_socket):
            seen = await socket.next_data("live")
            assert (seen["type"], seen["order"]["id"]) == ("PLACED", ada_order["id"])

        bob_order = await place_order(bob, product)
        await move_order(client, "confirmOrder", ada_order["id"])
        for socket in (staff_one, staff_two):
            placed = await socket.next_data("live")
            assert (placed["order"]["id"], placed["order"]["customer"]["name"]) == (
                bob_order["id"],
                "Bob",
            )
            confirmed = await socket.next_data("live")
            assert (confirmed["type"], confirmed["order"]["id"]) == ("CONFIRMED", ada_order["id"])
        # Ada's socket never sees Bob's order: her next event is her own confirmation.
        confirmed = await ada_socket.next_data("live")
        assert (confirmed["type"], confirmed["order"]["id"]) == ("CONFIRMED", ada_order["id"])
        assert confirmed["order"]["status"] == "CONFIRMED"


async def test_a_member_leaving_does_not_end_the_others(
    served: Served, client: GraphQLClient
) -> None:
    product = await new_product(client, "P-1")
    _, ada_token = await register(client, "Ada")
    ada = client.as_customer(ada_token)
    async with open_socket(served.ws_url) as staying:
        await staying.init(STAFF_TOKEN)
        await staying.subscribe("live", LIVE_ORDER_EVENTS)
        async with open_socket(served.ws_url) as leaving:
            await leaving.init(STAFF_TOKEN)
            await leaving.subscribe("live", LIVE_ORDER_EVENTS)
            await tail_followers(served, 1)  # both staff sockets, one shared group
            first = await place_order(ada, product)
            assert (await leaving.next_data("live"))["order"]["id"] == first["id"]
            assert (await staying.next_data("live"))["order"]["id"] == first["id"]
            await leaving.send({"id": "live", "type": "complete"})
        second = await place_order(ada, product)
        assert (await staying.next_data("live"))["order"]["id"] == second["id"]
        # A replaying subscription runs on its own and still sees everything from its cursor.
        await staying.subscribe("replay", ORDER_EVENTS, after="0")
        replayed = [await staying.next_data("replay") for _ in range(2)]
        assert [e["order"]["id"] for e in replayed] == [first["id"], second["id"]]
