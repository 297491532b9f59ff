"""How an event stream ends when its connection asked to close after the response
(`Connection: close`, HTTP/1.0) and the server stops, and when its client is gone before
the stream's first write: the stop is not held, and no one is answered 500."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from pathlib import Path

import pytest
from starlette.types import Message

from orderdesk.app import create_app
from tests.databases import sqlite_settings
from tests.served import serve
from tests.ws_client import PRODUCT_EVENTS

WAIT = 10


class RawStream:
    """An event stream over a raw connection, with the request line and headers given."""

    def __init__(self, port: int, version: str, connection: str | None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        body = json.dumps({"query": PRODUCT_EVENTS}).encode()
        head = [
            f"POST /graphql {version}",
            "Host: 127.0.0.1",
            "Accept: text/event-stream",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
        ]
        if connection is not None:
            head.append(f"Connection: {connection}")
        self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        self.received = b""

    def accepted(self) -> None:
        while b"\r\n\r\n" not in self.received:
            chunk = self.sock.recv(65536)
            assert chunk, f"closed before the response started: {self.received!r}"
            self.received += chunk
        assert self.received.startswith(b"HTTP/1.1 200"), self.received

    def rest(self) -> bytes:
        """What comes until the server closes the connection."""
        while chunk := self.sock.recv(65536):
            self.received += chunk
        return self.received

    def close(self) -> None:
        self.sock.close()


async def test_streams_that_asked_to_close_do_not_hold_a_stopping_server(tmp_path: Path) -> None:
    streams: list[RawStream] = []
    try:
        with serve(sqlite_settings(tmp_path)) as served:
            for version, connection in (
                ("HTTP/1.1", "close"),
                ("HTTP/1.1", "close"),
                ("HTTP/1.0", None),
            ):
                stream = RawStream(served.port, version, connection)
                streams.append(stream)
                await asyncio.to_thread(stream.accepted)
            stopping = time.monotonic()
            # Leaving `serve` stops the server, as SIGTERM does, and waits for it.
        stopped_in = time.monotonic() - stopping
        assert stopped_in < 3, f"the server took {stopped_in:.1f} s to stop"
        for stream in streams:
            rest = await asyncio.to_thread(stream.rest)
            # Ended without `complete`: graphql-sse's client reconnects and resumes.
            assert b"event: complete" not in rest, rest
    finally:
        for stream in streams:
            stream.close()


async def test_a_client_gone_before_the_first_write_is_no_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Some servers raise from `send` once the peer has gone (uvicorn ignores it): driven
    # here as such a server would, with the app's own lifespan.
    app = create_app(sqlite_settings(tmp_path))
    body = json.dumps({"query": PRODUCT_EVENTS}).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"accept", b"text/event-stream"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[Message] = []

    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)
        raise OSError("the connection is gone")

    async with app.router.lifespan_context(app):
        with caplog.at_level(logging.ERROR):
            await asyncio.wait_for(app(scope, receive, send), WAIT)
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [200]
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
