"""A webhook endpoint for tests: a small HTTP/1.1 server on a free loopback port, in the test's
own event loop, that records every request and answers each with the next status it was
given (then 200)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from handlers.webhooks.signature import verify

_REASONS = {200: "OK", 204: "No Content", 302: "Found", 500: "Internal Server Error"}


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    """By lower-case name."""
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def signed_with(self, secret: str) -> bool:
        return verify(self.headers["orderdesk-signature"], secret, self.body, now=time.time())


@dataclass
class Receiver:
    statuses: list[int] = field(default_factory=list)
    """What the next requests are answered, in turn; 200 once it is empty."""
    always: int | None = None
    """What every request is answered, if set (after `statuses`)."""
    received: list[Received] = field(default_factory=list)
    port: int = 0
    extra_headers: dict[str, str] = field(default_factory=dict)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    def url(self, path: str = "/hooks/orderdesk", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    async def wait_for(
        self,
        count: int,
        predicate: Callable[[Received], bool] = lambda _: True,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> list[Received]:
        """Once `count` requests that match have arrived, those requests."""

        def matching() -> list[Received]:
            return [r for r in self.received if predicate(r)]

        try:
            async with asyncio.timeout(timeout), self._arrived:
                await self._arrived.wait_for(lambda: len(matching()) >= count)
        except TimeoutError:
            raise AssertionError(
                f"{len(matching())} of {count} requests arrived within {timeout} s: "
                f"{[r.body[:200] for r in self.received]}"
            ) from None
        return matching()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines:
                if ":" in line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            status = self.statuses.pop(0) if self.statuses else (self.always or 200)
            async with self._arrived:
                self.received.append(Received(request_line.split(" ")[1], headers, body))
                self._arrived.notify_all()
            answer = b"received" if status < 300 else b"not today\x1b[31m <script>"
            extra = "".join(f"{name}: {value}\r\n" for name, value in self.extra_headers.items())
            writer.write(
                f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"
                f"Content-Length: {len(answer)}\r\n{extra}Connection: close\r\n\r\n".encode()
                + answer
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def receiving(**options: Any) -> AsyncIterator[Receiver]:
    receiver = Receiver(**options)
    server = await asyncio.start_server(receiver._serve, "127.0.0.1", 0)
    receiver.port = server.sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        server.close()
        await server.wait_closed()
