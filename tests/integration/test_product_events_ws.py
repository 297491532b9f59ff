"""The productEvents subscription over real websockets, on both subprotocols, against the
served app: live events, the productId filter, resuming with `after`, the replay/live seam
under a burst of writes, and what the socket does with bad input."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from tests.graphql_client import JSON, GraphQLClient
from tests.served import Served

TRANSPORT_WS = Subprotocol("graphql-transport-ws")
LEGACY_WS = Subprotocol("graphql-ws")
WAIT = 10
"""Seconds any one websocket receive may take: a broken server fails the test, not hangs it."""

PRODUCT_FIELDS = "id sku name stock version price { amount currency } createdAt updatedAt"
PRODUCT_EVENTS = f"""subscription Watch($productId: ID, $after: String) {{
    productEvents(productId: $productId, after: $after) {{
        position occurredAt type product {{ {PRODUCT_FIELDS} }}
    }}
}}"""
RESULT = "__typename ... on Error { message }"
CREATE = f"""mutation($input: CreateProductInput!) {{
    createProduct(input: $input) {{
        {RESULT} ... on CreateProductSuccess {{ product {{ {PRODUCT_FIELDS} }} }}
    }}
}}"""
UPDATE = f"""mutation($input: UpdateProductInput!) {{
    updateProduct(input: $input) {{
        {RESULT} ... on UpdateProductSuccess {{ product {{ {PRODUCT_FIELDS} }} }}
    }}
}}"""
RESTOCK = f"""mutation($input: RestockProductInput!) {{
    restockProduct(input: $input) {{
        {RESULT} ... on RestockProductSuccess {{ product {{ {PRODUCT_FIELDS} }} }}
    }}
}}"""
DELETE = f"""mutation($input: DeleteProductInput!) {{
    deleteProduct(input: $input) {{ {RESULT} ... on DeleteProductSuccess {{ deletedId }} }}
}}"""


# ---------------------------------------------------------------- the catalog, over HTTP


async def _mutate(client: GraphQLClient, mutation: str, field: str, variables: JSON) -> JSON:
    result: JSON = (await client.execute(mutation, {"input": variables}))[field]
    assert result["__typename"].endswith("Success"), result
    return result


async def create(client: GraphQLClient, sku: str, name: str, stock: int = 0) -> JSON:
    values = {"sku": sku, "name": name, "price": "9.90", "stock": stock}
    product: JSON = (await _mutate(client, CREATE, "createProduct", values))["product"]
    return product


async def restock(client: GraphQLClient, product_id: str, quantity: int) -> JSON:
    values = {"id": product_id, "quantity": quantity}
    product: JSON = (await _mutate(client, RESTOCK, "restockProduct", values))["product"]
    return product


async def rename(client: GraphQLClient, product_id: str, name: str) -> JSON:
    values = {"id": product_id, "name": name}
    product: JSON = (await _mutate(client, UPDATE, "updateProduct", values))["product"]
    return product


async def delete(client: GraphQLClient, product_id: str) -> None:
    await _mutate(client, DELETE, "deleteProduct", {"id": product_id})


# ---------------------------------------------------------------- the websocket side


class Socket:
    """A websocket speaking one GraphQL subprotocol, every receive bounded by WAIT."""

    def __init__(self, connection: ClientConnection, protocol: Subprotocol) -> None:
        self.connection = connection
        self.protocol = protocol

    @property
    def legacy(self) -> bool:
        return self.protocol == LEGACY_WS

    async def send(self, message: JSON | str) -> None:
        await self.connection.send(message if isinstance(message, str) else json.dumps(message))

    async def receive(self) -> JSON:
        """The next protocol message, keep-alives (`ka`, server `ping`) answered and skipped."""
        while True:
            async with asyncio.timeout(WAIT):
                frame = await self.connection.recv()
            assert isinstance(frame, str), frame
            message = json.loads(frame)
            assert isinstance(message, dict), message
            if self.legacy and message.get("type") == "ka":
                continue
            if not self.legacy and message.get("type") == "ping":
                await self.send({"type": "pong"})
                continue
            return message

    async def init(self) -> None:
        await self.send({"type": "connection_init", "payload": {}})
        assert await self.receive() == {"type": "connection_ack"}

    async def subscribe(self, op_id: str, **variables: str) -> None:
        start = "start" if self.legacy else "subscribe"
        payload = {"query": PRODUCT_EVENTS, "variables": variables}
        await self.send({"id": op_id, "type": start, "payload": payload})

    async def stop(self, op_id: str) -> None:
        await self.send({"id": op_id, "type": "stop" if self.legacy else "complete"})

    async def next_event(self, op_id: str) -> JSON:
        """The next message must be an event, without errors, of the operation `op_id`."""
        message = await self.receive()
        assert message["type"] == ("data" if self.legacy else "next"), message
        assert message["id"] == op_id, message
        assert set(message["payload"]) == {"data"}, message
        event: JSON = message["payload"]["data"]["productEvents"]
        return event

    async def closed(self) -> tuple[int, str]:
        """Wait for the server to close the socket, with no message before; its code, reason."""
        try:
            async with asyncio.timeout(WAIT):
                frame = await self.connection.recv()
        except ConnectionClosed as error:
            close = error.rcvd
        else:
            pytest.fail(f"the server should have closed the socket, it sent {frame!r}")
        assert close is not None, "the socket dropped without a close frame"
        return close.code, close.reason

    async def answers_ping(self) -> None:
        """graphql-transport-ws: the connection is still open and serving."""
        await self.send({"type": "ping"})
        assert await self.receive() == {"type": "pong"}


@asynccontextmanager
async def open_socket(served: Served, protocol: Subprotocol) -> AsyncIterator[Socket]:
    async with connect(
        served.ws_url, subprotocols=[protocol], open_timeout=WAIT, close_timeout=WAIT
    ) as connection:
        assert connection.subprotocol == protocol
        yield Socket(connection, protocol)


def position(event: JSON) -> int:
    text = event["position"]
    assert isinstance(text, str), event
    assert text.isascii(), event
    assert text.isdigit(), event
    return int(text)


def assert_strictly_increasing(events: list[JSON]) -> None:
    positions = [position(e) for e in events]
    assert positions == sorted(set(positions)), positions


def product_global_id_of_another_type() -> str:
    """A well-formed global id that names an order, not a product."""
    return base64.b64encode(b"Order:1").decode()


# ---------------------------------------------------------------- 1, 2: live events


async def test_graphql_transport_ws_streams_created_and_restocked_then_completes(
    served: Served, client: GraphQLClient
) -> None:
    async with open_socket(served, TRANSPORT_WS) as socket:
        await socket.init()
        await socket.subscribe("all")
        product = await create(client, "ANV-1", "Anvil", stock=3)

        created = await socket.next_event("all")
        assert created["type"] == "CREATED"
        assert created["product"] == product
        assert (product["stock"], product["version"]) == (3, 1)
        assert created["occurredAt"] == product["createdAt"] == product["updatedAt"]
        assert datetime.fromisoformat(created["occurredAt"]).utcoffset() is not None

        restocked_product = await restock(client, product["id"], 5)
        assert (restocked_product["stock"], restocked_product["version"]) == (8, 2)
        restocked = await socket.next_event("all")
        assert restocked["type"] == "RESTOCKED"
        assert restocked["product"] == restocked_product
        assert restocked["occurredAt"] == restocked_product["updatedAt"]
        assert position(restocked) > position(created)

        # `complete` ends the operation: the server sends nothing more for it. A second
        # subscription, resuming after the restock, is the barrier: the next change must
        # reach it, and the first message after that change must be its, not "all"'s.
        await socket.stop("all")
        await socket.subscribe("resumed", after=restocked["position"])
        renamed = await rename(client, product["id"], "Anvil Pro")
        updated = await socket.next_event("resumed")
        assert updated["type"] == "UPDATED"
        assert updated["product"] == renamed
        await socket.answers_ping()


async def test_legacy_graphql_ws_streams_created_and_restocked_then_stops(
    served: Served, client: GraphQLClient
) -> None:
    async with open_socket(served, LEGACY_WS) as socket:
        await socket.init()
        await socket.subscribe("all")
        product = await create(client, "ANV-1", "Anvil", stock=3)

        created = await socket.next_event("all")
        assert created["type"] == "CREATED"
        assert created["product"] == product

        restocked_product = await restock(client, product["id"], 5)
        restocked = await socket.next_event("all")
        assert restocked["type"] == "RESTOCKED"
        assert restocked["product"] == restocked_product
        assert restocked["product"]["stock"] == 8
        assert position(restocked) > position(created)

        # subscriptions-transport-ws answers `stop` with `complete`, and nothing after it.
        await socket.stop("all")
        assert await socket.receive() == {"type": "complete", "id": "all"}
        await socket.subscribe("resumed", after=restocked["position"])
        renamed = await rename(client, product["id"], "Anvil Pro")
        updated = await socket.next_event("resumed")
        assert updated["type"] == "UPDATED"
        assert updated["product"] == renamed


# ---------------------------------------------------------------- 3: the productId filter


async def test_a_product_filter_delivers_only_that_products_events(
    served: Served, client: GraphQLClient
) -> None:
    a = await create(client, "A-1", "Awl")
    b = await create(client, "B-1", "Bolt")
    async with (
        open_socket(served, TRANSPORT_WS) as only_a,
        open_socket(served, TRANSPORT_WS) as everything,
    ):
        await only_a.init()
        await everything.init()
        # Replaying from the start makes the test independent of when the server registers
        # the subscriptions, and puts the filter to work on replayed and live events alike.
        await only_a.subscribe("a", productId=a["id"], after="0")
        await everything.subscribe("all", after="0")

        await restock(client, b["id"], 4)
        await rename(client, b["id"], "Big bolt")
        a_restocked = await restock(client, a["id"], 2)  # the barrier: after B's changes
        await delete(client, b["id"])
        a_renamed = await rename(client, a["id"], "Sharp awl")

        a_events = [await only_a.next_event("a") for _ in range(3)]
        assert [(e["type"], e["product"]["id"]) for e in a_events] == [
            ("CREATED", a["id"]),
            ("RESTOCKED", a["id"]),
            ("UPDATED", a["id"]),
        ]
        assert a_events[1]["product"] == a_restocked
        assert a_events[2]["product"] == a_renamed
        assert_strictly_increasing(a_events)

        # B's changes did make events: the unfiltered subscriber saw them, between A's.
        all_events = [await everything.next_event("all") for _ in range(7)]
        assert [(e["type"], e["product"]["id"]) for e in all_events] == [
            ("CREATED", a["id"]),
            ("CREATED", b["id"]),
            ("RESTOCKED", b["id"]),
            ("UPDATED", b["id"]),
            ("RESTOCKED", a["id"]),
            ("DELETED", b["id"]),
            ("UPDATED", a["id"]),
        ]
        assert_strictly_increasing(all_events)
        a_positions = [position(e) for e in a_events]
        assert [position(e) for e in all_events if e["product"]["id"] == a["id"]] == a_positions


# ---------------------------------------------------------------- 4: resuming


async def test_resuming_after_a_position_replays_the_missed_events_then_live_ones(
    served: Served, client: GraphQLClient
) -> None:
    async with open_socket(served, TRANSPORT_WS) as socket:
        await socket.init()
        await socket.subscribe("all", after="0")
        product = await create(client, "ANV-1", "Anvil", stock=3)
        created = await socket.next_event("all")
        assert created["type"] == "CREATED"
        assert created["product"] == product

    # Disconnected: two changes happen that the client does not see.
    await restock(client, product["id"], 5)
    renamed = await rename(client, product["id"], "Anvil Pro")

    async with open_socket(served, TRANSPORT_WS) as socket:
        await socket.init()
        await socket.subscribe("all", after=created["position"])
        missed = [await socket.next_event("all") for _ in range(2)]
        assert [(e["type"], e["product"]["id"]) for e in missed] == [
            ("RESTOCKED", product["id"]),
            ("UPDATED", product["id"]),
        ]
        assert missed[0]["product"]["stock"] == 8
        assert missed[1]["product"] == renamed

        live_product = await restock(client, product["id"], 1)
        live = await socket.next_event("all")
        assert live["type"] == "RESTOCKED"
        assert live["product"] == live_product
        assert live_product["stock"] == 9

        # No duplicate trails the live event either: the next message is the next change.
        last_product = await rename(client, product["id"], "Anvil Max")
        last = await socket.next_event("all")
        assert (last["type"], last["product"]) == ("UPDATED", last_product)

        events = [created, *missed, live, last]
        assert_strictly_increasing(events)
        assert len({e["position"] for e in events}) == 5


async def test_replayed_events_carry_the_product_as_the_read_model_shows_it_when_delivered(
    served: Served, client: GraphQLClient
) -> None:
    # The documented contract (ProductEvent's description): a live event shows the product
    # right after that event; a replayed one shows it as it is when the replay delivers it.
    # Historical views would need a snapshot per event; the type and position say what
    # happened, and the read model says where things stand.
    product = await create(client, "ANV-1", "Anvil", stock=3)
    await restock(client, product["id"], 5)
    renamed = await rename(client, product["id"], "Anvil Pro")

    async with open_socket(served, TRANSPORT_WS) as socket:
        await socket.init()
        await socket.subscribe("all", after="0")
        events = [await socket.next_event("all") for _ in range(3)]
    assert [e["type"] for e in events] == ["CREATED", "RESTOCKED", "UPDATED"]
    assert_strictly_increasing(events)
    assert [e["product"] for e in events] == [renamed] * 3
    assert (renamed["name"], renamed["stock"], renamed["version"]) == ("Anvil Pro", 8, 3)


# ---------------------------------------------------------------- 5: the seam, under load


async def _events_until_barrier(socket: Socket, op_id: str, barrier_type: str) -> list[JSON]:
    """Every event of `op_id` up to and including the first of type `barrier_type`."""
    events: list[JSON] = []
    while not events or events[-1]["type"] != barrier_type:
        events.append(await socket.next_event(op_id))
    return events


async def test_resuming_during_a_burst_of_writes_misses_and_repeats_nothing(
    served: Served, client: GraphQLClient
) -> None:
    writes = 30
    product = await create(client, "ANV-1", "Anvil")
    async with AsyncExitStack() as stack:
        live = await stack.enter_async_context(open_socket(served, TRANSPORT_WS))
        await live.init()
        await live.subscribe("live", after="0")
        created = await live.next_event("live")
        assert (created["type"], created["product"]) == ("CREATED", product)

        live_events: list[JSON] = []
        progress = asyncio.Condition()

        async def follow_live() -> None:
            while not live_events or live_events[-1]["type"] != "UPDATED":
                live_events.append(await live.next_event("live"))
                async with progress:
                    progress.notify_all()

        async def live_has_seen(count: int) -> None:
            async with asyncio.timeout(WAIT), progress:
                await progress.wait_for(lambda: len(live_events) >= count)

        async def write() -> list[JSON]:
            return [await restock(client, product["id"], 1) for _ in range(writes)]

        async with asyncio.TaskGroup() as group:
            following = group.create_task(follow_live())
            writing = group.create_task(write())
            # Resume from before every write at several moments of the burst, so that some
            # subscriptions meet it in the middle: part replayed from the log, part live.
            resumers: list[asyncio.Task[list[JSON]]] = []
            for seen in (0, 1, 10, 20):
                await live_has_seen(seen)
                socket = await stack.enter_async_context(open_socket(served, TRANSPORT_WS))
                await socket.init()
                await socket.subscribe("resumed", after=created["position"])
                resumers.append(
                    group.create_task(_events_until_barrier(socket, "resumed", "UPDATED"))
                )
            restocked = await writing
            barrier = await rename(client, product["id"], "Anvil Pro")
            await following

    assert [p["version"] for p in restocked] == list(range(2, writes + 2))
    assert restocked[-1]["stock"] == writes
    assert [e["type"] for e in live_events] == ["RESTOCKED"] * writes + ["UPDATED"]
    assert {e["product"]["id"] for e in live_events} == {product["id"]}
    assert live_events[-1]["product"] == barrier
    assert_strictly_increasing([created, *live_events])
    expected = [e["position"] for e in live_events]
    for resumer in resumers:
        resumed = resumer.result()
        assert [e["position"] for e in resumed] == expected
        assert [e["type"] for e in resumed] == ["RESTOCKED"] * writes + ["UPDATED"]


# ---------------------------------------------------------------- 6: bad input


def _bad_user_input(message: str) -> JSON:
    return {"message": message, "extensions": {"code": "BAD_USER_INPUT"}}


async def _failure(socket: Socket, op_id: str) -> tuple[str, list[JSON]]:
    """How the operation `op_id` failed: the message type and its GraphQL errors.

    A `next` carrying errors must end with `complete`; an `error` ends the operation alone.
    """
    message = await socket.receive()
    assert message["id"] == op_id, message
    if message["type"] == "error":
        errors: list[JSON] = message["payload"]
    else:
        assert message["type"] == "next", message
        assert message["payload"]["data"] is None, message
        errors = message["payload"]["errors"]
        assert await socket.receive() == {"id": op_id, "type": "complete"}
    return message["type"], errors


ORDER_ID = product_global_id_of_another_type()


# Bad arguments fail the operation with the protocol's `error` message, whether the resolver
# refuses them (it checks them before it makes the stream) or GraphQL does while coercing
# them (a malformed global id).
@pytest.mark.parametrize(
    ("variables", "failure"),
    [
        (
            {"after": "abc"},
            ("error", "after must be a position from an earlier event, not 'abc'"),
        ),
        (
            {"after": "-1"},
            ("error", "after must be a position from an earlier event, not '-1'"),
        ),
        (
            {"after": "1" * 19},
            ("error", f"after must be a position from an earlier event, not '{'1' * 19}'"),
        ),
        ({"productId": ORDER_ID}, ("error", f'"{ORDER_ID}" is an Order id, not a Product id')),
        (
            {"productId": "not a global id"},
            ("error", '"not a global id" is not a Product id, nor any id this API gives'),
        ),
    ],
    ids=["after-abc", "after-negative", "after-too-long", "id-of-an-order", "id-malformed"],
)
async def test_bad_arguments_fail_the_operation_and_keep_the_socket(
    served: Served, client: GraphQLClient, variables: dict[str, str], failure: tuple[str, str]
) -> None:
    product = await create(client, "ANV-1", "Anvil")
    async with open_socket(served, TRANSPORT_WS) as socket:
        await socket.init()
        await socket.subscribe("bad", **variables)
        kind, errors = await _failure(socket, "bad")
        expected_kind, expected_message = failure
        assert kind == expected_kind, errors
        assert [{k: e[k] for k in ("message", "extensions")} for e in errors] == [
            _bad_user_input(expected_message)
        ]

        await socket.answers_ping()
        await socket.subscribe("bad", after="0")  # the failed operation's id is free again
        event = await socket.next_event("bad")
        assert (event["type"], event["product"]) == ("CREATED", product)


async def test_legacy_protocol_reports_a_bad_after_and_keeps_the_socket(
    served: Served, client: GraphQLClient
) -> None:
    product = await create(client, "ANV-1", "Anvil")
    async with open_socket(served, LEGACY_WS) as socket:
        await socket.init()
        await socket.subscribe("bad", after="abc")
        refused = await socket.receive()
        assert (refused["type"], refused["id"]) == ("error", "bad")
        assert {k: refused["payload"][k] for k in ("message", "extensions")} == _bad_user_input(
            "after must be a position from an earlier event, not 'abc'"
        )
        await socket.subscribe("good", after="0")
        event = await socket.next_event("good")
        assert (event["type"], event["product"]) == ("CREATED", product)


async def test_an_after_of_non_ascii_digits_is_bad_user_input(
    served: Served, client: GraphQLClient
) -> None:
    # "²".isdigit() is True, yet int("²") raises ValueError: an internal error, unless the
    # position is checked as ASCII digits.
    await create(client, "ANV-1", "Anvil")
    async with open_socket(served, TRANSPORT_WS) as socket:
        await socket.init()
        await socket.subscribe("bad", after="²")
        kind, errors = await _failure(socket, "bad")
        assert kind == "error", errors
        assert [{k: e[k] for k in ("message", "extensions")} for e in errors] == [
            _bad_user_input("after must be a position from an earlier event, not '²'")
        ]


SUBSCRIBE = {"id": "1", "type": "subscribe", "payload": {"query": PRODUCT_EVENTS}}


@pytest.mark.parametrize(
    ("init", "frames", "code", "reason"),
    [
        (True, ["{not json"], 4400, "WebSocket message must be valid JSON"),
        (
            True,
            [{"type": "subscribe", "payload": {"query": PRODUCT_EVENTS}}],
            4400,
            "Failed to parse message",
        ),
        (False, [SUBSCRIBE], 4401, "Unauthorized"),
        (True, [SUBSCRIBE, SUBSCRIBE], 4409, "Subscriber for 1 already exists"),
        (True, [{"type": "connection_init"}], 4429, "Too many initialisation requests"),
    ],
    ids=["not-json", "subscribe-without-id", "before-init", "duplicate-id", "second-init"],
)
async def test_protocol_violations_close_the_socket_with_their_code(
    served: Served, init: bool, frames: list[JSON | str], code: int, reason: str
) -> None:
    async with open_socket(served, TRANSPORT_WS) as socket:
        if init:
            await socket.init()
        for frame in frames:
            await socket.send(frame)
        closed_code, closed_reason = await socket.closed()
        assert (closed_code, closed_reason) == (code, reason)


async def test_legacy_protocol_start_before_init_closes_with_4401(served: Served) -> None:
    async with open_socket(served, LEGACY_WS) as socket:
        await socket.subscribe("1")
        assert await socket.closed() == (4401, "Unauthorized")
