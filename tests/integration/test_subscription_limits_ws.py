"""What one subscription may cost and see, over real websockets against the served app: how
far back `after` may replay (max_replay_events), and who sees the stock that orders move
(public_stock_events)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from websockets.typing import Subprotocol

from orderdesk.settings import Settings
from tests.databases import sqlite_url
from tests.graphql_client import JSON, STAFF_TOKEN, TEST_SECRET, GraphQLClient
from tests.served import Served
from tests.ws_client import (
    LEGACY_WS,
    ORDER_EVENTS,
    TRANSPORT_WS,
    Socket,
    new_product,
    open_socket,
    place_order,
    register,
)

MAX_REPLAY = 20
PROTOCOLS = pytest.mark.parametrize(
    "protocol", [TRANSPORT_WS, LEGACY_WS], ids=["transport", "legacy"]
)

PRODUCT_EVENTS = """subscription Watch($after: String) {
    productEvents(after: $after) { position type product { id stock price { amount } } }
}"""
# No `after`: the same subscription by the same caller shares one stream.
LIVE_PRODUCT_EVENTS = """subscription {
    productEvents { position type product { id stock price { amount } } }
}"""
RESTOCK = """mutation($input: RestockProductInput!) {
    restockProduct(input: $input) { __typename }
}"""
REPRICE = """mutation($input: UpdateProductInput!) {
    updateProduct(input: $input) { __typename }
}"""


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """The app `served` runs: a small replay cap, and the other settings a test asks for
    (`with_settings`)."""
    changes: dict[str, object] = getattr(request, "param", {})
    return Settings.model_validate(
        {
            "database_url": sqlite_url(tmp_path),
            "poll_interval": 0.2,
            "jwt_secret": TEST_SECRET,
            # These tests write in quick bursts; what they are about is not the rate limits.
            "rate_limits": False,
            "max_replay_events": MAX_REPLAY,
            **changes,
        }
    )


def with_settings(**changes: object) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("settings", [changes], indirect=True, ids=[repr(changes)])


PRIVATE_STOCK = with_settings(public_stock_events=False)


async def restock(client: GraphQLClient, product_id: str, times: int) -> None:
    """`times` restocks of one: one event each."""
    for _ in range(times):
        result = await client.execute(RESTOCK, {"input": {"id": product_id, "quantity": 1}})
        assert result["restockProduct"]["__typename"] == "RestockProductSuccess", result


async def reprice(client: GraphQLClient, product_id: str, price: str) -> None:
    result = await client.execute(REPRICE, {"input": {"id": product_id, "price": price}})
    assert result["updateProduct"]["__typename"] == "UpdateProductSuccess", result


async def product_event(socket: Socket, op_id: str) -> JSON:
    return await socket.next_data(op_id, "productEvents")


async def failure(socket: Socket, op_id: str) -> list[JSON]:
    """The GraphQL errors that ended `op_id` before any event: a result with no data and
    errors (`next`, or `data` on the legacy protocol), then `complete`."""
    message = await socket.receive()
    assert message["id"] == op_id, message
    assert message["type"] == ("data" if socket.legacy else "next"), message
    assert message["payload"]["data"] is None, message
    errors: list[JSON] = message["payload"]["errors"]
    assert await socket.receive() == {"id": op_id, "type": "complete"}
    return errors


@contextmanager
def log_reads(served: Served) -> Iterator[list[str]]:
    """The SQL the served app runs on its log engine meanwhile (in the server's thread)."""
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    engine = served.services.log_engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def tail_followers(served: Served, count: int) -> None:
    """Wait until the event tail has `count` subscribers: nothing else says that a
    subscription without a cursor is in place before the next event."""
    async with asyncio.timeout(10):
        # The tail lives in the server thread's loop: polled, as no event can cross over.
        while served.services.tail.subscriber_count != count:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


# ---------------------------------------------------------------- how far back `after` goes


@PROTOCOLS
async def test_an_after_within_the_cap_replays_exactly_the_missed_events_then_goes_live(
    served: Served, client: GraphQLClient, protocol: Subprotocol
) -> None:
    product = await new_product(client, "ANV-1")
    async with open_socket(served.ws_url, protocol) as socket:
        await socket.init()
        await socket.subscribe("first", PRODUCT_EVENTS, after="0")
        created = await product_event(socket, "first")
        assert (created["type"], created["product"]["id"]) == ("CREATED", product)

    await restock(client, product, MAX_REPLAY)  # exactly the cap behind: still replayed

    async with open_socket(served.ws_url, protocol) as socket:
        await socket.init()
        await socket.subscribe("resumed", PRODUCT_EVENTS, after=created["position"])
        missed = [await product_event(socket, "resumed") for _ in range(MAX_REPLAY)]
        assert [e["type"] for e in missed] == ["RESTOCKED"] * MAX_REPLAY
        # A fresh log has no gaps: the missed events are the next MAX_REPLAY positions.
        after = int(created["position"])
        positions = [int(e["position"]) for e in missed]
        assert positions == list(range(after + 1, after + 1 + MAX_REPLAY))
        assert [e["product"]["stock"] for e in missed] == [1_000 + MAX_REPLAY] * MAX_REPLAY

        await restock(client, product, 1)
        live = await product_event(socket, "resumed")
        assert live["type"] == "RESTOCKED"
        assert int(live["position"]) == positions[-1] + 1
        assert live["product"]["stock"] == 1_000 + MAX_REPLAY + 1

        # One event later the same cursor is a position too far.
        await socket.subscribe("again", PRODUCT_EVENTS, after=created["position"])
        [error] = await failure(socket, "again")
        assert error["extensions"]["code"] == "REPLAY_TOO_LONG"
        assert error["extensions"]["behind"] == MAX_REPLAY + 1


@PROTOCOLS
async def test_an_after_further_back_than_the_cap_is_refused_at_once_without_events(
    served: Served, client: GraphQLClient, protocol: Subprotocol
) -> None:
    product = await new_product(client, "ANV-1")
    await restock(client, product, MAX_REPLAY)  # the creation and these: 21 behind "0"
    async with open_socket(served.ws_url, protocol) as socket:
        await socket.init()
        with log_reads(served) as reads:
            started = time.monotonic()
            await socket.subscribe("old", PRODUCT_EVENTS, after="0")
            errors = await failure(socket, "old")
            took = time.monotonic() - started
        assert errors == [
            {
                "message": f'after: "0" is {MAX_REPLAY + 1} log positions behind the newest '
                f"event, and a subscription replays at most {MAX_REPLAY}. Re-read the current "
                "state with a query, then subscribe without `after` (or with a recent cursor).",
                "extensions": {
                    "code": "REPLAY_TOO_LONG",
                    "maxReplayEvents": MAX_REPLAY,
                    "behind": MAX_REPLAY + 1,
                },
            }
        ]
        assert took < 1, took
        # Refused before reading the backlog: the tail reads ranges of the log (`position <=`)
        # only to replay or to deliver, and nothing was written meanwhile.
        assert [r for r in reads if "event_log.position <=" in r] == []

        # The socket is fine, and doing what the message says works: a subscription from
        # now on sees the next change, and nothing more came for the refused one.
        await socket.subscribe("live", PRODUCT_EVENTS)
        await tail_followers(served, 1)
        await restock(client, product, 1)
        live = await product_event(socket, "live")
        assert (live["type"], live["product"]["stock"]) == ("RESTOCKED", 1_000 + MAX_REPLAY + 1)


async def test_order_events_share_the_cap(served: Served, client: GraphQLClient) -> None:
    product = await new_product(client, "ANV-1")
    await restock(client, product, MAX_REPLAY)
    async with open_socket(served.ws_url) as socket:
        await socket.init(STAFF_TOKEN)
        await socket.subscribe("orders", ORDER_EVENTS, after="0")
        [error] = await failure(socket, "orders")
        assert error["extensions"] == {
            "code": "REPLAY_TOO_LONG",
            "maxReplayEvents": MAX_REPLAY,
            "behind": MAX_REPLAY + 1,
        }


@PROTOCOLS
async def test_an_after_beyond_the_newest_event_is_bad_user_input(
    served: Served, client: GraphQLClient, protocol: Subprotocol
) -> None:
    # Not a number, or negative, is refused before the stream starts (test_product_events_ws);
    # a number that no event has had yet is found out by asking the log.
    product = await new_product(client, "ANV-1")
    async with open_socket(served.ws_url, protocol) as socket:
        await socket.init()
        await socket.subscribe("bad", PRODUCT_EVENTS, after="2")
        errors = await failure(socket, "bad")
        assert [(e["message"], e["extensions"]) for e in errors] == [
            ('after: "2" is no position of an event: the newest is "1"', {"code": "BAD_USER_INPUT"})
        ]
        await socket.subscribe("good", PRODUCT_EVENTS, after="0")
        created = await product_event(socket, "good")
        assert (created["type"], created["product"]["id"]) == ("CREATED", product)


# ---------------------------------------------------------------- who sees stock reservations


async def _reservation_then_price_change(
    served: Served, client: GraphQLClient, expected: dict[Socket, int], followers: int
) -> list[list[JSON]]:
    """A customer's order reserves stock, then staff change the price: the events each
    socket saw, as many as it is expected to see. `followers` is the tail subscribers the
    sockets make: those of one caller share one stream."""
    product = await new_product(client, "ANV-1", stock=10)
    _, token = await register(client, "Ada")
    for socket in expected:
        await socket.subscribe("live", LIVE_PRODUCT_EVENTS)
    await tail_followers(served, followers)
    await place_order(client.as_customer(token), product, quantity=3)
    await reprice(client, product, "7.25")
    return [
        [await product_event(socket, "live") for _ in range(count)]
        for socket, count in expected.items()
    ]


@PRIVATE_STOCK
async def test_private_stock_events_reach_staff_only(served: Served, client: GraphQLClient) -> None:
    _, customer_token = await register(client, "Bob")
    async with (
        open_socket(served.ws_url) as anonymous,
        open_socket(served.ws_url) as anonymous_too,
        open_socket(served.ws_url) as customer,
        open_socket(served.ws_url) as staff,
    ):
        await anonymous.init(None)
        await anonymous_too.init(None)
        await customer.init(customer_token)
        await staff.init(STAFF_TOKEN)
        expected = {staff: 2, anonymous: 1, anonymous_too: 1, customer: 1}
        seen = await _reservation_then_price_change(served, client, expected, 3)

    [reserved, repriced], *others = seen
    assert (reserved["type"], reserved["product"]["stock"]) == ("UPDATED", 7)
    assert int(reserved["position"]) < int(repriced["position"])
    assert repriced["type"] == "UPDATED"
    # Both anonymous sockets (one shared stream) and the customer: the price change only.
    assert others == [[repriced]] * 3


async def test_stock_events_are_public_by_default(served: Served, client: GraphQLClient) -> None:
    async with open_socket(served.ws_url) as anonymous, open_socket(served.ws_url) as staff:
        await anonymous.init(None)
        await staff.init(STAFF_TOKEN)
        for_anonymous, for_staff = await _reservation_then_price_change(
            served, client, {anonymous: 2, staff: 2}, 2
        )
    assert for_anonymous == for_staff
    reserved, repriced = for_anonymous
    assert reserved["product"]["stock"] == 7
    assert int(reserved["position"]) < int(repriced["position"])


@PRIVATE_STOCK
async def test_private_stock_events_are_not_replayed_to_anonymous_subscribers(
    served: Served, client: GraphQLClient
) -> None:
    product = await new_product(client, "ANV-1", stock=10)
    _, token = await register(client, "Ada")
    await place_order(client.as_customer(token), product, quantity=3)
    await restock(client, product, 1)
    async with (
        open_socket(served.ws_url) as anonymous,
        open_socket(served.ws_url) as staff,
    ):
        await anonymous.init(None)
        await staff.init(STAFF_TOKEN)
        await anonymous.subscribe("all", PRODUCT_EVENTS, after="0")
        await staff.subscribe("all", PRODUCT_EVENTS, after="0")
        seen_by_staff = [await product_event(staff, "all") for _ in range(3)]
        seen_by_anonymous = [await product_event(anonymous, "all") for _ in range(2)]
    assert [e["type"] for e in seen_by_staff] == ["CREATED", "UPDATED", "RESTOCKED"]
    # The restock (the shop's own doing) is public; the reservation is not.
    assert seen_by_anonymous == [seen_by_staff[0], seen_by_staff[2]]
