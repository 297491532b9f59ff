"""The websocket subprotocols' rules, against the served app with short timeouts: close codes,
the subscriptions cap, server pings and dead clients, and a clean shutdown."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import uvicorn
from pydantic import SecretStr
from starlette.applications import Starlette

from orderdesk.app import create_app
from orderdesk.settings import Settings
from tests.databases import sqlite_url
from tests.graphql_client import JSON, TEST_SECRET
from tests.served import Served, serve
from tests.ws_client import LEGACY_WS, ORDER_EVENTS, TRANSPORT_WS, Socket, open_socket

SHORT = 0.4
"""Seconds for the init timeout, the ping interval and the pong timeout in these tests."""


@pytest.fixture
def short_settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=sqlite_url(tmp_path),
        poll_interval=0.2,
        jwt_secret=SecretStr(TEST_SECRET),
        ws_init_timeout=SHORT,
        ws_ping_interval=SHORT,
        ws_pong_timeout=SHORT,
        max_subscriptions_per_connection=2,
    )


@pytest.fixture
def quick(short_settings: Settings) -> Iterator[Served]:
    with serve(short_settings) as running:
        yield running


SUBSCRIBE: JSON = {"id": "1", "type": "subscribe", "payload": {"query": ORDER_EVENTS}}


@pytest.mark.parametrize(
    ("init", "frames", "code", "reason"),
    [
        (True, ["{not json"], 4400, "WebSocket message must be valid JSON"),
        (True, [{"type": "subscribe"}], 4400, "Failed to parse message"),
        (True, [{"type": "no-such-type"}], 4400, "Unknown message type: no-such-type"),
        (True, [{"id": "1", "type": "subscribe", "payload": {"query": "{"}}], 4400, None),
        (False, [SUBSCRIBE], 4401, "Unauthorized"),
        (False, [], 4408, "Connection initialisation timeout"),
        (True, [SUBSCRIBE, SUBSCRIBE], 4409, "Subscriber for 1 already exists"),
        (True, [{"type": "connection_init"}], 4429, "Too many initialisation requests"),
    ],
    ids=[
        "not-json",
        "no-id",
        "unknown-type",
        "bad-query",
        "before-ack",
        "no-init",
        "dup",
        "re-init",
    ],
)
async def test_graphql_transport_ws_closes_with_the_protocol_codes(
    quick: Served, init: bool, frames: list[JSON | str], code: int, reason: str | None
) -> None:
    async with open_socket(quick.ws_url, TRANSPORT_WS) as socket:
        if init:
            await socket.init()
        for frame in frames:
            await socket.send(frame)
        closed_code, closed_reason = await socket.closed()
        assert closed_code == code
        if reason is not None:
            assert closed_reason == reason
        else:
            assert closed_reason.startswith("Syntax Error"), closed_reason


async def test_legacy_graphql_ws_closes_before_init_and_after_the_init_timeout(
    quick: Served,
) -> None:
    async with open_socket(quick.ws_url, LEGACY_WS) as socket:
        await socket.send({"id": "1", "type": "start", "payload": {"query": ORDER_EVENTS}})
        assert await socket.closed() == (4401, "Unauthorized")
    async with open_socket(quick.ws_url, LEGACY_WS) as socket:
        started = time.monotonic()
        assert await socket.closed() == (4408, "Connection initialisation timeout")
        assert SHORT - 0.1 <= time.monotonic() - started < SHORT + 5
    async with open_socket(quick.ws_url, LEGACY_WS) as socket:
        await socket.init()
        await asyncio.sleep(SHORT * 2)  # past the init timeout: an initialised socket stays
        await socket.subscribe("1")
        await socket.send({"id": "1", "type": "stop"})
        assert await socket.receive() == {"id": "1", "type": "complete"}


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_subscriptions_per_socket_are_capped(quick: Served, protocol: str) -> None:
    async with open_socket(quick.ws_url, protocol) as socket:  # type: ignore[arg-type]
        await socket.init()
        await socket.subscribe("1")
        await socket.subscribe("2")
        await socket.subscribe("3")
        refused = await socket.receive()
        assert (refused["id"], refused["type"]) == ("3", "error"), refused
        message = refused["payload"] if socket.legacy else refused["payload"][0]
        assert message["message"] == "Subscription limit reached"
        # One ends, and there is room again.
        await socket.send({"id": "1", "type": "stop" if socket.legacy else "complete"})
        if socket.legacy:
            assert await socket.receive() == {"id": "1", "type": "complete"}
        await asyncio.sleep(0.1)
        await socket.subscribe("4")
        await socket.send({"id": "4", "type": "stop" if socket.legacy else "complete"})
        if socket.legacy:
            assert await socket.receive() == {"id": "4", "type": "complete"}


async def test_the_server_pings_and_keeps_a_client_that_answers(quick: Served) -> None:
    async with open_socket(quick.ws_url, TRANSPORT_WS) as socket:
        await socket.init()
        await socket.subscribe("1")
        deadline = time.monotonic() + SHORT * 6
        while time.monotonic() < deadline:
            # Socket.receive answers each ping with a pong; nothing else comes.
            with pytest.raises(TimeoutError):
                await socket.receive(wait=SHORT)
        assert socket.pings >= 3
        await socket.send({"type": "ping"})
        assert await socket.receive() == {"type": "pong"}


async def test_a_client_that_does_not_answer_pings_is_closed(quick: Served) -> None:
    async with open_socket(quick.ws_url, TRANSPORT_WS) as socket:
        await socket.init()
        assert await socket.receive_raw() == {"type": "ping"}  # and no pong goes back
        started = time.monotonic()
        code, reason = await _closed_raw(socket)
        assert (code, reason) == (1011, "no pong within 0.4 s of a ping")
        assert time.monotonic() - started < SHORT + 5


async def _closed_raw(socket: Socket) -> tuple[int, str]:
    from websockets.exceptions import ConnectionClosed  # noqa: PLC0415

    with pytest.raises(ConnectionClosed) as closed:
        await socket.receive_raw()
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


# ---------------------------------------------------------------- shutdown


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[tuple[str, list[str]]]:
    """The app in a uvicorn thread; on exit, the server stops (in a thread, so this loop's
    sockets can answer the close) and the tasks still alive after the app's own shutdown
    are listed in the second value."""
    app: Starlette = create_app(settings)
    leftovers: list[str] = []
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def checked(application: Starlette) -> AsyncIterator[None]:
        async with inner(application):
            yield
        me = asyncio.current_task()
        leftovers.extend(
            task.get_name()
            for task in asyncio.all_tasks()
            if task is not me and "Server" not in task.get_coro().__qualname__  # type: ignore[union-attr]
        )

    app.router.lifespan_context = checked
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", ws="websockets-sansio"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}/graphql", leftovers
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 30)
        assert not thread.is_alive()


async def test_stopping_the_server_closes_subscribers_and_leaves_no_task(
    short_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    app = running_app(short_settings)
    ws_url, leftovers = await app.__aenter__()
    stopped = False
    try:
        async with (
            open_socket(ws_url, TRANSPORT_WS) as modern,
            open_socket(ws_url, LEGACY_WS) as legacy,
        ):
            for socket in (modern, legacy):
                await socket.init()
                await socket.subscribe("orders", after="0")
                await socket.subscribe("products", "subscription { productEvents { type } }")
            await modern.send({"type": "ping"})
            assert await modern.receive() == {"type": "pong"}

            stopping = asyncio.create_task(app.__aexit__(None, None, None))
            stopped = True
            # 1012 "service restart": the client reconnects (to another process, or this one
            # once it is back) and resumes with `after`.
            assert await modern.closed() == (1012, "")
            assert await legacy.closed() == (1012, "")
            await stopping
    finally:
        if not stopped:
            await app.__aexit__(None, None, None)
    assert leftovers == []
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert problems == []


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "subscribe", "id": "1", "payload": "x"},
        {"type": "subscribe", "id": "1", "payload": []},
        {"type": "subscribe", "id": "1", "payload": {"query": ORDER_EVENTS, "variables": "zz"}},
        {"type": "subscribe", "id": 5, "payload": {"query": ORDER_EVENTS}},
        [1, 2],
        5,
    ],
    ids=["payload-string", "payload-list", "variables-string", "id-number", "a-list", "a-number"],
)
async def test_malformed_messages_close_with_4400(quick: Served, frame: object) -> None:
    async with open_socket(quick.ws_url) as socket:
        await socket.init()
        await socket.send(json.dumps(frame))
        code, _ = await socket.closed()
        assert code == 4400


async def test_the_legacy_protocol_answers_a_malformed_start_with_an_error(quick: Served) -> None:
    async with open_socket(quick.ws_url, LEGACY_WS) as socket:
        await socket.init()
        await socket.send({"type": "start", "id": "1"})
        assert await socket.receive() == {
            "type": "error",
            "id": "1",
            "payload": {"message": "Failed to parse message"},
        }
        await socket.subscribe("2")  # the socket still works
        await socket.send({"id": "2", "type": "stop"})
        assert await socket.receive() == {"id": "2", "type": "complete"}
