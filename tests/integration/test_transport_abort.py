"""A websocket whose client stops reading is dropped by aborting its transport (ASGI has no
way to); the abort must be found under uvicorn's default loop, uvloop, whose transports are
not asyncio.Transport subclasses."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import uvloop

from orderdesk.websocket_protocols import find_transport_abort


class _Protocol(asyncio.Protocol):
    """Stands where uvicorn's protocol object stands: `send` is its method, it holds the
    transport."""

    def __init__(self, made: asyncio.Event) -> None:
        self.transport: Any = None
        self.made = made
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.made.set()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)

    async def send(self, message: object) -> None:
        pass


def _wrapped(send: Callable[..., Any]) -> Callable[..., Any]:
    # Starlette's middleware wrap `send` in closures, as here.
    async def wrapped(message: object) -> None:
        await send(message)

    return wrapped


async def _abort_found_and_closes() -> None:
    loop = asyncio.get_running_loop()
    accepted: list[_Protocol] = []
    made = asyncio.Event()

    def accept() -> _Protocol:
        accepted.append(_Protocol(made))
        return accepted[-1]

    server = await loop.create_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await asyncio.wait_for(made.wait(), 5)
        protocol = accepted[0]
        assert not isinstance(protocol.transport, asyncio.Transport)  # uvloop's own kind
        abort = find_transport_abort(_wrapped(_wrapped(protocol.send)))
        assert abort is not None
        abort()
        await asyncio.wait_for(protocol.lost, 5)
        assert await asyncio.wait_for(reader.read(), 5) == b""
    finally:
        writer.close()
        server.close()
        await server.wait_closed()


def test_the_abort_is_found_under_uvloop() -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_abort_found_and_closes())


def test_nothing_is_found_where_no_transport_is() -> None:
    async def send(message: object) -> None:
        pass

    assert find_transport_abort(_wrapped(send)) is None
