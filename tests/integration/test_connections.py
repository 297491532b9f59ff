"""What one server process lets a stranger hold (orderdesk/server.py), against the served app:
half-sent headers and stalled bodies are cut off, connections beyond the limit are refused at
once (websockets included), a websocket message is bounded by the body limit, query strings
stay out of the logs, and X-Forwarded-For is believed from the named proxies only."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import struct
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from uvicorn.logging import AccessFormatter
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from orderdesk.settings import Settings
from tests.databases import sqlite_settings
from tests.served import Served, serve, serve_asgi
from tests.ws_client import TRANSPORT_WS, open_socket

HEADER_TIMEOUT = 0.5
WAIT = 5.0
"""Seconds anything the server should do promptly may take here (the machine is shared)."""

HALF_A_HEADER = b"GET /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: "


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    return sqlite_settings(
        tmp_path,
        **overrides,
    )


@pytest.fixture
def quick(tmp_path: Path) -> Iterator[Served]:
    """A short header timeout, and keep-alive long enough not to be what closes anything."""
    with serve(
        settings_for(tmp_path, header_timeout=HEADER_TIMEOUT, keep_alive_timeout=30)
    ) as running:
        yield running


def live_url(served: Served) -> str:
    return f"http://127.0.0.1:{served.port}/health/live"


@asynccontextmanager
async def raw(served: Served) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with suppress(ConnectionError):  # the server may have reset it already
            await writer.wait_closed()


async def until_closed(reader: asyncio.StreamReader, wait: float = WAIT) -> bytes:
    """All the server sends until it closes the connection, which must be within `wait`."""
    received = b""
    async with asyncio.timeout(wait):
        try:
            while chunk := await reader.read(65_536):
                received += chunk
        except ConnectionResetError:
            pass
    return received


async def answered_promptly(served: Served) -> None:
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=WAIT) as http:
        response = await http.get(live_url(served))
    assert response.status_code == 200
    assert time.monotonic() - started < WAIT


# ------------------------------------------------------------------ the header timeout


async def test_connections_that_send_half_a_header_are_closed_after_the_header_timeout(
    quick: Served,
) -> None:
    async with AsyncExitStack() as stack:
        opened: list[tuple[float, asyncio.StreamReader]] = []
        for _ in range(200):
            reader, writer = await stack.enter_async_context(raw(quick))
            writer.write(HALF_A_HEADER)
            opened.append((time.monotonic(), reader))
        await answered_promptly(quick)  # while they wait

        async def closed_after(since: float, reader: asyncio.StreamReader) -> float:
            assert await until_closed(reader) == b""  # closed without a word
            return time.monotonic() - since

        waited = await asyncio.gather(*(closed_after(since, r) for since, r in opened))
    assert min(waited) >= HEADER_TIMEOUT * 0.9, min(waited)
    await answered_promptly(quick)


async def test_a_kept_alive_connection_must_complete_its_next_headers_in_time(
    quick: Served,
) -> None:
    async with raw(quick) as (reader, writer):
        writer.write(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        assert head.startswith(b"HTTP/1.1 200 ")
        length = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
        assert length is not None
        await reader.readexactly(int(length[1]))
        answered = time.monotonic()
        # The keep-alive timer (30 s here) stops at the first byte of the next request.
        writer.write(HALF_A_HEADER)
        assert await until_closed(reader) == b""
    assert time.monotonic() - answered >= HEADER_TIMEOUT * 0.9


async def test_a_body_that_stalls_is_cut_off(quick: Served) -> None:
    async with raw(quick) as (reader, writer):
        writer.write(
            b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
            b'{"query": "'
        )
        sent = time.monotonic()
        assert await until_closed(reader) == b""
    assert time.monotonic() - sent >= HEADER_TIMEOUT * 0.9
    await answered_promptly(quick)


async def test_headers_beyond_64_kib_are_refused_with_431(quick: Served) -> None:
    async with raw(quick) as (reader, writer):
        writer.write(HALF_A_HEADER + b"x" * 70_000)
        started = time.monotonic()
        answer = await until_closed(reader)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]
    assert time.monotonic() - started < HEADER_TIMEOUT  # refused for its size, not its time


# ------------------------------------------------------------------ the connection limit


@pytest.fixture
def small(tmp_path: Path) -> Iterator[Served]:
    with serve(settings_for(tmp_path, max_connections=5)) as running:
        yield running


async def refused_promptly(served: Served, request: bytes) -> None:
    """A new connection is answered 503 and closed (or just closed), long before the header
    timeout (10 s here) would close it."""
    started = time.monotonic()
    async with raw(served) as (reader, writer):
        writer.write(request)
        answer = await until_closed(reader, wait=2.0)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 503 "), answer[:100]
    assert time.monotonic() - started < 2.0


async def served_again(served: Served) -> None:
    """Connections that went are noticed by the server as they go: it serves again soon."""
    async with httpx.AsyncClient(timeout=WAIT) as http:
        for _ in range(25):
            if (await http.get(live_url(served))).status_code == 200:
                return
            await asyncio.sleep(0.2)
    pytest.fail("the server did not serve again once the connections had gone")


async def test_connections_beyond_the_limit_are_refused_at_once(small: Served) -> None:
    async with AsyncExitStack() as held:
        for _ in range(5):
            _, writer = await held.enter_async_context(raw(small))
            writer.write(HALF_A_HEADER)
        await refused_promptly(small, b"")  # silent: not even a byte to wait for
        await refused_promptly(small, HALF_A_HEADER)
        await refused_promptly(small, b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    await served_again(small)


async def test_websockets_hold_places_of_the_connection_limit(small: Served) -> None:
    async with AsyncExitStack() as held:
        sockets = [
            await held.enter_async_context(open_socket(small.ws_url, TRANSPORT_WS))
            for _ in range(5)
        ]
        for socket in sockets:
            await socket.init()
        await refused_promptly(small, b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        started = time.monotonic()
        with pytest.raises((InvalidHandshake, OSError)):
            async with connect(small.ws_url, subprotocols=[TRANSPORT_WS], open_timeout=2.0):
                pass
        assert time.monotonic() - started < 2.0
    await served_again(small)


# ------------------------------------------------------------------ websocket message size


async def test_a_websocket_frame_above_the_body_limit_is_refused_from_its_header(
    quick: Served,
) -> None:
    limit = quick.settings.max_body_bytes
    async with raw(quick) as (reader, writer):
        writer.write(
            b"GET /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        assert head.startswith(b"HTTP/1.1 101 "), head
        # A masked text frame that says it carries limit + 1 bytes, and only 1 KiB of them:
        # the server must answer from the header, without waiting for the rest.
        writer.write(b"\x81\xff" + struct.pack("!Q", limit + 1) + b"mask" + b"x" * 1024)
        frame = await until_closed(reader)
    assert frame[0] == 0x88, frame  # a close frame
    (code,) = struct.unpack("!H", frame[2:4])
    assert code == 1009
    await answered_promptly(quick)


async def test_a_subscribe_message_above_the_body_limit_closes_the_socket_with_1009(
    quick: Served,
) -> None:
    padding = "#" * quick.settings.max_body_bytes  # a comment: the document stays tiny
    subscribe = {
        "id": "1",
        "type": "subscribe",
        "payload": {"query": f"{padding}\nsubscription {{ productEvents {{ position }} }}"},
    }
    async with open_socket(quick.ws_url, TRANSPORT_WS) as socket:
        await socket.init()
        await socket.send(json.dumps(subscribe))
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(WAIT):
                await socket.connection.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009
    await answered_promptly(quick)


# ------------------------------------------------------------------ logs


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def recorded(*names: str) -> Iterator[list[logging.LogRecord]]:
    handler = Records()
    loggers = [logging.getLogger(name) for name in names]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


async def test_logs_show_the_path_and_never_the_query_string(tmp_path: Path) -> None:
    with (
        serve(settings_for(tmp_path), log_level="info") as served,
        recorded("uvicorn.access", "uvicorn.error") as records,
    ):
        async with httpx.AsyncClient(timeout=WAIT) as http:
            response = await http.get(
                served.http_url,
                params={"query": "{ __typename }", "variables": '{"token": "s3cret"}'},
                headers={"Accept": "application/json"},
            )
        async with open_socket(f"{served.ws_url}?token=s3cret", TRANSPORT_WS) as socket:
            await socket.init()
    access = [r for r in records if r.name == "uvicorn.access"]
    assert len(access) == 1
    line = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s').format(access[0])
    status = f"{response.status_code} {response.reason_phrase}"
    assert re.fullmatch(rf'127\.0\.0\.1:\d+ - "GET /graphql HTTP/1\.1" {status}', line), line
    accepted = [r.getMessage() for r in records if "WebSocket" in r.getMessage()]
    assert accepted, [r.getMessage() for r in records]
    assert all("/graphql" in message and "?" not in message for message in accepted), accepted
    assert not [r for r in records if "s3cret" in r.getMessage() or "typename" in r.getMessage()]


# ------------------------------------------------------------------ the client's address


async def client_host(request: Request) -> PlainTextResponse:
    assert request.client is not None
    return PlainTextResponse(request.client.host)


@pytest.mark.parametrize(
    ("forwarded_allow_ips", "seen"),
    [
        (None, "127.0.0.1"),  # no proxy trusted: the peer is the client
        ("10.0.0.1", "127.0.0.1"),  # a proxy, but not this peer
        ("127.0.0.1", "203.0.113.7"),
    ],
)
async def test_x_forwarded_for_names_the_client_only_from_a_trusted_proxy(
    tmp_path: Path, forwarded_allow_ips: str | None, seen: str
) -> None:
    app = Starlette(routes=[Route("/client", client_host)])
    settings = settings_for(tmp_path, forwarded_allow_ips=forwarded_allow_ips)
    with serve_asgi(app, settings) as port:
        async with httpx.AsyncClient(timeout=WAIT) as http:
            response = await http.get(
                f"http://127.0.0.1:{port}/client", headers={"X-Forwarded-For": "203.0.113.7"}
            )
    assert response.text == seen
