"""Wake-ups over Redis pub/sub (`ORDERDESK_BROKER_URL=redis://...`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from persistence.wakeup_broker import CHANNEL


class RedisTransport:
    """Redis pub/sub: one client for PUBLISH, its pub/sub connection for SUBSCRIBE.

    A Redis that stops answering on an open connection (a stalled host, a dropped route)
    sends no error and no close: the subscription would wait forever, and every wake-up
    be lost, unnoticed. So the reader pings whenever it has heard nothing for
    `ping_every` seconds, and a connection silent for `silent_for` is given up on and
    made anew; every command besides has `timeout`.
    """

    def __init__(
        self, url: str, *, ping_every: float = 1.0, silent_for: float = 3.0, timeout: float = 3.0
    ) -> None:
        self._url = url
        self._ping_every = ping_every
        self._silent_for = silent_for
        self._timeout = timeout
        self._client: Any = None
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None

    async def connect(self, on_message: Callable[[str], None]) -> None:
        import redis.asyncio as redis  # noqa: PLC0415 - only needed when a Redis URL is set

        self._client = redis.from_url(
            self._url, socket_connect_timeout=self._timeout, socket_timeout=self._timeout
        )
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(CHANNEL)
        self._reader = asyncio.create_task(self._read(on_message), name="wakeup-redis-reader")

    async def _read(self, on_message: Callable[[str], None]) -> None:
        loop = asyncio.get_running_loop()
        pubsub = self._pubsub
        heard = loop.time()
        while True:
            message = await pubsub.get_message(timeout=self._ping_every)
            now = loop.time()
            if message is not None:
                heard = now  # a message or the answer to a ping: the connection lives
                if message.get("type") == "message":
                    data = message["data"]
                    on_message(data.decode() if isinstance(data, bytes) else str(data))
                continue
            if now - heard >= self._silent_for:
                raise ConnectionError(f"Redis has answered nothing for {now - heard:.1f} s")
            await pubsub.ping()

    async def wait_closed(self) -> None:
        if self._reader is not None:
            await self._reader  # raises the connection error that ended it

    async def send(self, payload: str) -> None:
        if self._client is None:
            raise ConnectionError("not connected")
        await self._client.publish(CHANNEL, payload)

    async def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self._timeout):
                    await pubsub.aclose()
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self._timeout):
                    await client.aclose()
