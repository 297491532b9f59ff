"""Subscriptions over Server-Sent Events (graphql-sse, distinct connections mode) against the
served app, over real streaming HTTP: live events and resuming with `after`, who may watch
what, what is refused before a stream starts (and how), the caps shared with websockets,
the end of a stream (its subscription's end, its token's, its client's, the server's), a
client that stops reading, and graphql-sse's own client driven from node."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from handlers.access import Identity, Role
from tests.databases import sqlite_settings
from tests.graphql_client import JSON, STAFF_TOKEN, TOKENS, GraphQLClient
from tests.node_clients import run_node
from tests.served import Served, serve
from tests.ws_client import (
    ORDER_EVENTS,
    PRODUCT_EVENTS,
    move_order,
    new_product,
    open_socket,
    place_order,
    register,
)

WAIT = 10
"""Seconds any one read of a stream may take: a broken server fails the test, not hangs it."""
EVENT_STREAM = {"Accept": "text/event-stream"}
RESTOCK = """mutation($input: RestockProductInput!) {
    restockProduct(input: $input) { __typename }
}"""


@dataclass
class Stream:
    """One event stream's response, read one SSE message at a time."""

    response: httpx.Response
    lines: AsyncIterator[str]
    comments: int = 0
    seen: list[tuple[str, str]] = field(default_factory=list)

    async def message(self, wait: float = WAIT) -> tuple[str, str]:
        """The next message's event and data, comments (pings) counted and skipped."""
        async with asyncio.timeout(wait):
            event, data = "", []
            async for line in self.lines:
                if line.startswith(":"):
                    self.comments += 1
                elif line.startswith("event:"):
                    event = line.removeprefix("event:").strip()
                elif line.startswith("data:"):
                    data.append(line.removeprefix("data:").strip())
                elif line == "" and (event or data):
                    self.seen.append((event, "\n".join(data)))
                    return self.seen[-1]
        raise AssertionError(f"the stream ended; it had sent {self.seen}")

    async def next(self, wait: float = WAIT) -> JSON:
        """The next message must be `next`; its payload."""
        event, data = await self.message(wait)
        assert event == "next", (event, data)
        payload: JSON = json.loads(data)
        return payload

    async def event(self, field_name: str = "orderEvents") -> JSON:
        """The next message must be a `next` with an event and no errors; the event."""
        payload = await self.next()
        assert set(payload) == {"data"}, payload
        event: JSON = payload["data"][field_name]
        return event

    async def completes(self) -> None:
        """The next message is `complete`, and then the response ends."""
        assert await self.message() == ("complete", "")
        async with asyncio.timeout(WAIT):
            rest = [line async for line in self.lines]
        assert [line for line in rest if line] == [], rest


@asynccontextmanager
async def open_stream(
    url: str,
    query: str,
    token: str | None = None,
    *,
    method: str = "POST",
    **variables: str,
) -> AsyncIterator[Stream]:
    """An accepted event stream (200, text/event-stream) for `query` as `token`'s caller."""
    async with (
        httpx.AsyncClient(timeout=WAIT) as http,
        send(http, url, query, token, method=method, **variables) as response,
    ):
        assert response.status_code == 200, (response.status_code, await response.aread())
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["cache-control"] == "no-cache, no-transform"
        yield Stream(response, response.aiter_lines())


@asynccontextmanager
async def send(
    http: httpx.AsyncClient,
    url: str,
    query: str,
    token: str | None = None,
    *,
    method: str = "POST",
    **variables: str,
) -> AsyncIterator[httpx.Response]:
    headers = dict(EVENT_STREAM)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if method == "GET":
        params = {"query": query, "variables": json.dumps(variables)}
        request = http.stream("GET", url, params=params, headers=headers)
    else:
        body = {"query": query, "variables": variables}
        request = http.stream(method, url, json=body, headers=headers)
    async with request as response:
        yield response


async def refusal(
    url: str, query: str, token: str | None = None, **variables: str
) -> tuple[httpx.Response, JSON]:
    """A request that must be answered with JSON, not a stream: the response and its body."""
    async with (
        httpx.AsyncClient(timeout=WAIT) as http,
        send(http, url, query, token, **variables) as response,
    ):
        await response.aread()
    assert response.headers["content-type"] == "application/json", response.headers
    body: JSON = response.json()
    return response, body


def codes(body: JSON) -> list[str]:
    return [error["extensions"]["code"] for error in body["errors"]]


async def eventually(check: object, wait: float = WAIT) -> None:
    """Wait until `check()` is true (for what the server does once a client has gone)."""
    assert callable(check)
    deadline = time.monotonic() + wait
    while not check():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        await asyncio.sleep(0.05)


# ---------------------------------------------------------------- events and resuming


async def test_live_order_events_then_a_resume_with_after_see_every_event_once_in_order(
    served: Served, client: GraphQLClient
) -> None:
    product = await new_product(client, "ANV-1")
    customer_id, token = await register(client, "Ada")
    ada = client.as_customer(token)
    async with open_stream(served.http_url, ORDER_EVENTS, token) as stream:
        placed = await place_order(ada, product, 2)
        first = await stream.event()
        assert (first["type"], first["order"]["id"], first["order"]["status"]) == (
            "PLACED",
            placed["id"],
            "PENDING",
        )
        assert first["order"]["customer"]["id"] == customer_id
        assert first["order"]["lines"] == [{"productName": "Anv-1", "quantity": 2}]
        await move_order(client, "confirmOrder", placed["id"])
        confirmed = await stream.event()
        assert (confirmed["type"], confirmed["order"]["version"]) == ("CONFIRMED", 2)

    # Disconnected: the order moves on, and a second order is placed and cancelled.
    await move_order(client, "shipOrder", placed["id"])
    await move_order(client, "deliverOrder", placed["id"])
    second = await place_order(ada, product)
    await move_order(ada, "cancelOrder", second["id"])

    async with open_stream(
        served.http_url, ORDER_EVENTS, token, after=confirmed["position"]
    ) as stream:
        missed = [await stream.event() for _ in range(4)]
        live_order = await place_order(ada, product)
        live = await stream.event()
        # Nothing repeats after the live one either: the next message is the next change.
        await move_order(client, "confirmOrder", live_order["id"])
        last = await stream.event()

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
    positions = [int(e["position"]) for e in events]
    assert positions == sorted(set(positions))


async def test_a_customer_streams_its_own_orders_only_and_staff_see_everyones(
    served: Served, client: GraphQLClient
) -> None:
    product = await new_product(client, "ANV-1")
    _ada_id, ada_token = await register(client, "Ada")
    bob_id, bob_token = await register(client, "Bob")
    ada, bob = client.as_customer(ada_token), client.as_customer(bob_token)
    async with (
        open_stream(served.http_url, ORDER_EVENTS, ada_token) as adas,
        open_stream(served.http_url, ORDER_EVENTS, STAFF_TOKEN, customerId=bob_id) as staffs,
    ):
        bobs = await place_order(bob, product)
        adas_order = await place_order(ada, product)
        # Ada's own order is the first thing she hears of; staff hear of Bob's.
        assert (await adas.event())["order"]["id"] == adas_order["id"]
        assert (await staffs.event())["order"]["id"] == bobs["id"]
    async with open_stream(served.http_url, ORDER_EVENTS, ada_token, customerId=bob_id) as peek:
        refused = await peek.next()
        # Refused before any event: a request error, which has no `data` entry.
        assert "data" not in refused, refused
        assert codes(refused) == ["FORBIDDEN"]
        await peek.completes()


async def test_anonymous_callers_stream_product_events_over_post_or_get(
    served: Served, client: GraphQLClient
) -> None:
    async with (
        open_stream(served.http_url, PRODUCT_EVENTS) as posted,
        open_stream(served.http_url, PRODUCT_EVENTS, method="GET") as got,
    ):
        product = await new_product(client, "ANV-1", stock=5)
        await client.execute(RESTOCK, {"input": {"id": product, "quantity": 3}})
        for stream in (posted, got):
            created = await stream.event("productEvents")
            restocked = await stream.event("productEvents")
            assert (created["type"], created["product"]["id"]) == ("CREATED", product)
            assert (restocked["type"], restocked["product"]["stock"]) == ("RESTOCKED", 8)


async def test_a_query_or_a_mutation_is_one_next_and_a_complete(
    served: Served, client: GraphQLClient
) -> None:
    product = await new_product(client, "ANV-1", stock=5)
    query = "query($id: ID!) { product(id: $id) { sku stock } }"
    async with open_stream(served.http_url, query, method="GET", id=product) as stream:
        assert await stream.next() == {"data": {"product": {"sku": "ANV-1", "stock": 5}}}
        await stream.completes()
    mutation = """mutation($id: ID!) { restockProduct(input: {id: $id, quantity: 2}) {
        ... on RestockProductSuccess { product { stock } } } }"""
    async with open_stream(served.http_url, mutation, STAFF_TOKEN, id=product) as stream:
        result = await stream.next()
        assert result == {"data": {"restockProduct": {"product": {"stock": 7}}}}
        await stream.completes()
    # A mutation is never run by a GET (a link, a crawler).
    async with (
        httpx.AsyncClient(timeout=WAIT) as http,
        send(http, served.http_url, mutation, STAFF_TOKEN, method="GET", id=product) as got,
    ):
        assert (got.status_code, got.headers["allow"]) == (405, "POST")


# ---------------------------------------------------------------- refused before a stream


async def test_what_is_wrong_before_execution_is_a_json_4xx_and_changes_nothing(
    served: Served, client: GraphQLClient
) -> None:
    before = await client.event_count()
    response, body = await refusal(served.http_url, PRODUCT_EVENTS, "not-a-token")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert codes(body) == ["UNAUTHENTICATED"]

    response, body = await refusal(served.http_url, "subscription { productEvents { position ")
    assert response.status_code == 400
    assert codes(body) == ["GRAPHQL_PARSE_FAILED"]
    assert body["errors"][0]["message"].startswith("Syntax Error")

    async with httpx.AsyncClient(timeout=WAIT) as http:
        answers = [
            await http.post(served.http_url, content=b"{not json", headers=_json_stream()),
            await http.post(served.http_url, content=b"[]", headers=_json_stream()),
            await http.post(served.http_url, json={"variables": {}}, headers=_json_stream()),
            await http.post(
                served.http_url,
                json={"query": PRODUCT_EVENTS, "variables": [1]},
                headers=_json_stream(),
            ),
            await http.get(
                served.http_url,
                params={"query": PRODUCT_EVENTS, "variables": "[1"},
                headers=EVENT_STREAM,
            ),
            await http.post(
                served.http_url,
                content=json.dumps({"query": PRODUCT_EVENTS}),
                headers={**EVENT_STREAM, "Content-Type": "text/plain"},
            ),
            await http.post(
                served.http_url,
                json={"query": "query A { __typename } query B { __typename }"},
                headers=_json_stream(),
            ),
        ]
    assert [(a.status_code, a.headers["content-type"]) for a in answers] == [
        *[(400, "application/json")] * 5,
        (415, "application/json"),
        (400, "application/json"),
    ]
    for answer in answers:
        assert answer.json()["errors"][0]["message"], answer.text
    assert "the variables parameter is not JSON" in answers[4].text
    assert "operationName" in answers[6].text
    assert await client.event_count() == before


def _json_stream() -> dict[str, str]:
    return {**EVENT_STREAM, "Content-Type": "application/json"}


async def test_a_document_that_does_not_validate_is_told_inside_the_stream(
    served: Served,
) -> None:
    # The protocol's rule: a client's EventSource (or graphql-sse's retries) would hide a
    # 4xx's reason, so validation errors are a `next` in an accepted stream.
    unknown = "subscription { productEvents { nonsense } }"
    async with open_stream(served.http_url, unknown) as stream:
        payload = await stream.next()
        assert "data" not in payload, payload
        assert codes(payload) == ["GRAPHQL_VALIDATION_FAILED"]
        await stream.completes()
    chain = "orders { edges { node { customer { " * 3
    deep = "query { customers { edges { node { " + chain + "id" + " } } } }" * 4
    async with open_stream(served.http_url, deep, STAFF_TOKEN) as stream:
        payload = await stream.next()
        assert "data" not in payload, payload
        messages = [error["message"] for error in payload["errors"]]
        assert any("exceeds maximum operation depth" in m for m in messages), messages
        await stream.completes()


async def test_persisted_documents_are_chosen_as_over_plain_http(served: Served) -> None:
    async with (
        httpx.AsyncClient(timeout=WAIT) as http,
        http.stream(
            "POST",
            served.http_url,
            json={"documentId": "sha256:" + "0" * 64},
            headers=_json_stream(),
        ) as response,
    ):
        assert response.status_code == 200
        stream = Stream(response, response.aiter_lines())
        assert codes(await stream.next()) == ["PERSISTED_QUERY_NOT_FOUND"]
        await stream.completes()


async def test_a_subscription_over_plain_http_is_still_refused_with_400(
    client: GraphQLClient,
) -> None:
    response = await client.post(PRODUCT_EVENTS)
    assert response.status_code == 400
    assert "websockets" in response.json()["errors"][0]["message"]


async def test_the_single_connection_mode_is_refused_with_405(served: Served) -> None:
    async with httpx.AsyncClient(timeout=WAIT) as http:
        reservation = await http.put(served.http_url)
        stop = await http.delete(served.http_url, params={"operationId": "1"})
    for answer in (reservation, stop):
        assert answer.status_code == 405
        assert answer.headers["allow"] == "GET, POST"
        assert "distinct connections mode" in answer.json()["errors"][0]["message"]


# ---------------------------------------------------------------- caps and rate limits


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[Served]:
    settings = sqlite_settings(
        tmp_path,
        max_sockets_per_address=3,
        max_sockets_per_identity=2,
        ws_ping_interval=0.3,
        ws_send_timeout=0.5,
    )
    with serve(settings) as running:
        yield running


async def test_streams_are_capped_per_address_together_with_websockets(guarded: Served) -> None:
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(open_stream(guarded.http_url, PRODUCT_EVENTS))
        await stack.enter_async_context(open_stream(guarded.http_url, PRODUCT_EVENTS))
        socket = await stack.enter_async_context(open_socket(guarded.ws_url))
        await socket.init(None)
        response, body = await refusal(guarded.http_url, PRODUCT_EVENTS)
        assert response.status_code == 429
        assert codes(body) == ["TOO_MANY_STREAMS"]
        assert "from this address (at most 3)" in body["errors"][0]["message"]
    # Every place is given back as its stream or socket closes.
    async with AsyncExitStack() as stack:
        for _ in range(3):
            await stack.enter_async_context(open_stream(guarded.http_url, PRODUCT_EVENTS))


async def test_streams_are_capped_per_caller(guarded: Served) -> None:
    async with AsyncExitStack() as stack:
        for _ in range(2):
            await stack.enter_async_context(
                open_stream(guarded.http_url, PRODUCT_EVENTS, STAFF_TOKEN)
            )
        response, body = await refusal(guarded.http_url, PRODUCT_EVENTS, STAFF_TOKEN)
        assert (response.status_code, codes(body)) == (429, ["TOO_MANY_STREAMS"])
        assert "for this caller (at most 2)" in body["errors"][0]["message"]
        # Another caller (here, anonymous) is not held back by this one.
        await stack.enter_async_context(open_stream(guarded.http_url, PRODUCT_EVENTS))


async def test_a_closed_stream_gives_back_its_place_and_its_subscription(
    guarded: Served,
) -> None:
    tail = guarded.services.tail
    baseline = tail.subscriber_count
    # `after` runs the subscription on its own (not shared): one tail subscriber each.
    for _ in range(4):  # one more than the cap, one after another
        async with open_stream(guarded.http_url, PRODUCT_EVENTS, after="0") as stream:
            await eventually(lambda: tail.subscriber_count == baseline + 1)
            assert stream.response.status_code == 200
        await eventually(lambda: tail.subscriber_count == baseline)
    assert guarded.services.tail.subscriber_count == baseline


async def test_idle_streams_are_kept_alive_with_comments(guarded: Served) -> None:
    async with open_stream(guarded.http_url, PRODUCT_EVENTS) as stream:
        with pytest.raises(TimeoutError):
            await stream.message(wait=1.0)
        assert stream.comments >= 2


async def test_each_stream_is_a_request_against_the_rate_limits(tmp_path: Path) -> None:
    settings = sqlite_settings(tmp_path, rate_limits=True, rate_limit_per_address="3/minute")
    with serve(settings) as served:
        async with AsyncExitStack() as stack:
            for _ in range(3):
                await stack.enter_async_context(open_stream(served.http_url, PRODUCT_EVENTS))
            response, body = await refusal(served.http_url, PRODUCT_EVENTS)
            assert response.status_code == 429
            assert codes(body) == ["RATE_LIMITED"]
            assert int(response.headers["retry-after"]) >= 1


# ---------------------------------------------------------------- how a stream ends


async def test_a_subscription_that_ends_ends_its_stream_with_complete(served: Served) -> None:
    async with open_stream(served.http_url, ORDER_EVENTS) as anonymous:
        refused = await anonymous.next()
        assert codes(refused) == ["UNAUTHENTICATED"]
        await anonymous.completes()
    async with open_stream(served.http_url, PRODUCT_EVENTS, after="999") as beyond:
        refused = await beyond.next()
        assert codes(refused) == ["BAD_USER_INPUT"]
        await beyond.completes()


async def test_a_stream_ends_within_a_second_of_its_token_expiring(
    served: Served, client: GraphQLClient
) -> None:
    token = TOKENS.issue(Identity("staff-2", Role.STAFF), lifetime=timedelta(seconds=2))
    expires_at = TOKENS.verify(token).expires_at
    async with open_stream(served.http_url, PRODUCT_EVENTS, token) as stream:
        await new_product(client, "ANV-1")
        created = await stream.event("productEvents")
        ended = await stream.next(wait=5)
        ended_at = time.time()
        assert ended["errors"][0]["message"] == "the bearer token has expired"
        assert ended["errors"][0]["extensions"] == {
            "code": "UNAUTHENTICATED",
            "resumeAfter": created["position"],
        }
        await stream.completes()
    assert expires_at <= ended_at < expires_at + 1


async def test_a_client_that_stops_reading_is_dropped_and_its_place_given_back(
    guarded: Served,
) -> None:
    async with httpx.AsyncClient(timeout=WAIT) as http:
        client = GraphQLClient(http, guarded)
        created = await client.execute(
            """mutation($input: CreateProductInput!) { createProduct(input: $input) {
                ... on CreateProductSuccess { product { id } } } }""",
            {"input": {"sku": "BIG-1", "name": "Big", "price": "1.00", "description": "x" * 5000}},
        )
        product = created["createProduct"]["product"]["id"]
        for _ in range(40):
            await client.execute(RESTOCK, {"input": {"id": product, "quantity": 1}})
    # 41 events of ~150 kB each, replayed at once, to a client that reads none of them.
    fields = " ".join(f"d{i}: description" for i in range(30))
    query = f'subscription {{ productEvents(after: "0") {{ position product {{ {fields} }} }} }}'
    tail = guarded.services.tail
    baseline = tail.subscriber_count
    reader = _NonReadingClient(guarded.port, query)
    try:
        await eventually(lambda: tail.subscriber_count == baseline + 1)
        # Dropped once a write has waited ws_send_timeout (0.5 s).
        await eventually(lambda: tail.subscriber_count == baseline, wait=5)
        assert reader.reset_or_closed(), "the server should have dropped the connection"
    finally:
        reader.close()
    # Its place is back: the cap of 3 streams can be held again.
    async with AsyncExitStack() as stack:
        for _ in range(3):
            await stack.enter_async_context(open_stream(guarded.http_url, PRODUCT_EVENTS))


class _NonReadingClient:
    """A raw connection that sends a stream request and then reads nothing, with a small
    receive buffer, so the server's writes back up."""

    def __init__(self, port: int, query: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        body = json.dumps({"query": query}).encode()
        head = (
            "POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.sock.sendall(head.encode() + body)

    def reset_or_closed(self) -> bool:
        """Read what the server sent before it dropped us: the read ends in a reset or EOF."""
        self.sock.settimeout(WAIT)
        try:
            while self.sock.recv(1 << 20):
                pass
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        self.sock.close()


async def test_a_server_shutting_down_ends_its_streams_without_complete(
    tmp_path: Path,
) -> None:
    settings = sqlite_settings(tmp_path)
    stack = AsyncExitStack()
    with serve(settings) as served:
        stream = await stack.enter_async_context(open_stream(served.http_url, PRODUCT_EVENTS))
        stopping = time.monotonic()
        # Leaving `serve` stops the server (in its thread) and waits for it.
    stopped_in = time.monotonic() - stopping
    try:
        assert stopped_in < 5, f"the server took {stopped_in:.1f} s to stop"
        # No `complete`: a graphql-sse client reconnects (elsewhere) rather than giving up.
        with pytest.raises((AssertionError, httpx.HTTPError)):
            await stream.message(wait=2)
        assert ("complete", "") not in stream.seen
    finally:
        await stack.aclose()


# ---------------------------------------------------------------- graphql-sse's own client


async def test_graphql_sse_client_receives_product_events(
    served: Served, client: GraphQLClient
) -> None:
    done = threading.Event()

    def drive() -> object:
        try:
            return run_node("sse_client.mjs", served.http_url, "2", STAFF_TOKEN)
        finally:
            done.set()

    watching = asyncio.get_running_loop().run_in_executor(None, drive)
    # The client prints nothing until it has its events; give it a moment to subscribe.
    await _until_subscribed(served)
    product = await new_product(client, "SSE-1", stock=5)
    await client.execute(RESTOCK, {"input": {"id": product, "quantity": 4}})
    events = await asyncio.wait_for(watching, timeout=60)
    assert isinstance(events, list), events
    assert [(e["type"], e["product"]["id"], e["product"]["stock"]) for e in events] == [
        ("CREATED", product, 5),
        ("RESTOCKED", product, 9),
    ]


async def _until_subscribed(served: Served) -> None:
    shared = served.services.tail
    await eventually(lambda: shared.subscriber_count >= 1, wait=30)
