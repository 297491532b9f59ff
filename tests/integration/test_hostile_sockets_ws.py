"""What a stranger may do with websockets, against the served app: a socket ends with its
token, sockets are counted per address and per caller, and queries and mutations over a
socket get the same limits as over HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path

import pytest
from websockets.typing import Subprotocol

from handlers.access import Identity, Role
from tests.databases import sqlite_settings
from tests.graphql_client import STAFF_TOKEN, TOKENS
from tests.read_side import SLOW_READ_MODEL
from tests.served import Served, serve
from tests.ws_client import LEGACY_WS, PRODUCT_EVENTS, TRANSPORT_WS, open_socket

PROTOCOLS = [TRANSPORT_WS, LEGACY_WS]


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[Served]:
    settings = sqlite_settings(
        tmp_path,
        max_sockets_per_address=3,
        max_sockets_per_identity=2,
        execution_timeout=0.5,
        max_query_length=1_000,
    )
    with serve(settings, extra_projections=[SLOW_READ_MODEL]) as running:
        yield running


def _expiring_token(seconds: int) -> tuple[str, float]:
    token = TOKENS.issue(Identity("staff-2", Role.STAFF), lifetime=timedelta(seconds=seconds))
    expires_at = TOKENS.verify(token).expires_at
    return token, expires_at


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_socket_is_closed_within_a_second_of_its_token_expiring(
    guarded: Served, protocol: Subprotocol
) -> None:
    token, expires_at = _expiring_token(2)
    async with open_socket(guarded.ws_url, protocol) as socket:
        await socket.init(token)
        await socket.subscribe("1", PRODUCT_EVENTS)
        if socket.legacy:
            message = await socket.receive(wait=5)
            assert message == {
                "type": "connection_error",
                "payload": {"message": "the bearer token has expired"},
            }
        code, reason = await socket.closed(wait=5)
        closed_at = time.time()
    assert (code, reason) == (4403, "the bearer token has expired")
    assert expires_at <= closed_at < expires_at + 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_sockets_are_capped_per_address(guarded: Served, protocol: Subprotocol) -> None:
    async with AsyncExitStack() as stack:
        for _ in range(3):
            socket = await stack.enter_async_context(open_socket(guarded.ws_url, protocol))
            await socket.init(None)
        async with open_socket(guarded.ws_url, protocol) as fourth:
            assert await fourth.closed() == (4429, "too many open websockets from this address")
    # Closed sockets are given back.
    async with open_socket(guarded.ws_url, protocol) as again:
        await again.init(None)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_sockets_are_capped_per_caller(guarded: Served, protocol: Subprotocol) -> None:
    async with AsyncExitStack() as stack:
        for _ in range(2):
            socket = await stack.enter_async_context(open_socket(guarded.ws_url, protocol))
            await socket.init(STAFF_TOKEN)
        async with open_socket(guarded.ws_url, protocol) as third:
            payload = {"Authorization": f"Bearer {STAFF_TOKEN}"}
            await third.send({"type": "connection_init", "payload": payload})
            if third.legacy:
                assert await third.receive() == {
                    "type": "connection_error",
                    "payload": {"message": "too many open websockets for this caller"},
                }
            code, _reason = await third.closed()
            assert code == 4429
        # Another caller is not held back by this one.
        other = await stack.enter_async_context(open_socket(guarded.ws_url, protocol))
        await other.init(None)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_queries_and_mutations_run_over_either_protocol(
    guarded: Served, protocol: Subprotocol
) -> None:
    async with open_socket(guarded.ws_url, protocol) as socket:
        await socket.init(STAFF_TOKEN)
        await socket.subscribe("q", "{ __typename }")
        message = await socket.receive()
        assert message["type"] == ("data" if socket.legacy else "next")
        assert message["payload"] == {"data": {"__typename": "Query"}}
        assert await socket.receive() == {"type": "complete", "id": "q"}


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_mutation_over_a_socket_has_the_deadline(
    guarded: Served, protocol: Subprotocol
) -> None:
    mutation = """mutation { createProduct(input: {sku: "ANV-9", name: "Anvil", price: "1.00",
        stock: 1}) { __typename } }"""
    async with open_socket(guarded.ws_url, protocol) as socket:
        await socket.init(STAFF_TOKEN)
        started = time.monotonic()
        await socket.subscribe("m", mutation)
        message = await socket.receive()
        assert time.monotonic() - started < 2.5
        assert message["payload"]["data"] is None
        assert message["payload"]["errors"][0]["extensions"]["code"] == "EXECUTION_TIMEOUT"
        assert await socket.receive() == {"type": "complete", "id": "m"}


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_long_query_over_a_socket_is_refused_unparsed(
    guarded: Served, protocol: Subprotocol
) -> None:
    async with open_socket(guarded.ws_url, protocol) as socket:
        await socket.init(STAFF_TOKEN)
        await socket.subscribe("long", PRODUCT_EVENTS + "#" * 2_000)
        message = await socket.receive()
        assert message["type"] == "error"
        assert message["id"] == "long"
        payload = message["payload"]
        error = payload if socket.legacy else payload[0]
        assert error["extensions"] == {"code": "QUERY_TOO_LONG", "maxLength": 1_000}
        # The socket stays usable.
        await socket.subscribe("ok", "{ __typename }")
        assert (await socket.receive())["payload"] == {"data": {"__typename": "Query"}}


async def test_a_second_connection_init_on_the_legacy_protocol_is_refused(guarded: Served) -> None:
    async with open_socket(guarded.ws_url, LEGACY_WS) as socket:
        await socket.init(STAFF_TOKEN)
        await socket.send({"type": "connection_init", "payload": {}})
        assert await socket.receive() == {
            "type": "connection_error",
            "payload": {"message": "Too many initialisation requests"},
        }
        assert (await socket.closed())[0] == 4429
    # The caller's count was given back once: it may open its two sockets again.
    async with (
        open_socket(guarded.ws_url, LEGACY_WS) as one,
        open_socket(guarded.ws_url, LEGACY_WS) as two,
    ):
        await one.init(STAFF_TOKEN)
        await two.init(STAFF_TOKEN)


async def test_a_syntax_error_quoting_a_long_document_still_closes_cleanly(
    guarded: Served,
) -> None:
    async with open_socket(guarded.ws_url, TRANSPORT_WS) as socket:
        await socket.init(STAFF_TOKEN)
        await socket.subscribe("1", "{ x } " + "b" * 500)
        code, reason = await socket.closed()
    assert code == 4400
    assert reason.startswith("Syntax Error")
    assert len(reason.encode()) <= 123


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_an_overlong_operation_id_is_a_malformed_message(
    guarded: Served, protocol: Subprotocol
) -> None:
    async with open_socket(guarded.ws_url, protocol) as socket:
        await socket.init(STAFF_TOKEN)
        await socket.subscribe("i" * 129, "{ __typename }")
        if socket.legacy:
            message = await socket.receive()
            assert message["type"] == "error"
            assert message["payload"] == {"message": "Failed to parse message"}
        else:
            assert await socket.closed() == (4400, "Failed to parse message")
