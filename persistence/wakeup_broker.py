"""Wake-ups over a broker: one process's commits reach the others as "the log has grown to
position N", coalesced, fire and forget, reconnecting when the transport drops.

The transports (persistence/wakeup_postgres.py, persistence/wakeup_redis.py,
persistence/wakeup_local.py) only connect, send and receive; what a wake-up means, and
that a broker which is away must never fail or slow down a command, is this module's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from typing import Protocol

logger = logging.getLogger("orderdesk.wakeup")

CHANNEL = "orderdesk_events"
OnWake = Callable[[int | None], None]
"""Told the position the log has grown to, if the message says."""
RETRY_DELAY = 0.5
"""Seconds between attempts to reach a broker that is away (a lost wake-up costs a poll)."""


class Transport(Protocol):
    """A connection to one broker, made anew by `BrokerWakeUps` whenever it is lost."""

    async def connect(self, on_message: Callable[[str], None]) -> None:
        """Connect and subscribe; returns once messages will be passed to `on_message`."""

    async def wait_closed(self) -> None:
        """Return (or raise) when the connection is lost."""

    async def send(self, payload: str) -> None: ...

    async def close(self) -> None: ...


class BrokerWakeUps:
    """Publishes and receives wake-ups over a transport, reconnecting when it drops.

    Each process tags its messages with an origin id and ignores its own: the unit of work
    has already woken the local projector.
    """

    def __init__(self, transport: Transport, *, name: str) -> None:
        self._transport = transport
        self._name = name
        self._origin = uuid.uuid4().hex[:12]
        self._latest = 0
        self._sent = 0
        self._pending = asyncio.Event()
        self._connected = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._on_wake: OnWake = lambda _position: None

    async def start(self, on_wake: OnWake) -> None:
        self._on_wake = on_wake
        self._tasks = [
            asyncio.create_task(self._listen(), name=f"wakeup-listen-{self._name}"),
            asyncio.create_task(self._publish_loop(), name=f"wakeup-publish-{self._name}"),
        ]
        # Wait (briefly) for the subscription, so a test or a client that writes right
        # after start-up is not left to the poll; a broker that is away does not block start.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await self._connected.wait()

    def publish(self, position: int) -> None:
        if position > self._latest:
            self._latest = position
            self._pending.set()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self._transport.close()

    def _received(self, payload: str) -> None:
        origin, _, position = payload.partition(":")
        if origin != self._origin:
            self._on_wake(int(position) if position.isdigit() else None)

    async def _listen(self) -> None:
        while True:
            try:
                await self._transport.connect(self._received)
                self._connected.set()
                # Events committed while we were not subscribed got no wake-up to us.
                self._on_wake(None)
                await self._transport.wait_closed()
                logger.warning("%s wake-up connection lost; reconnecting", self._name)
            except asyncio.CancelledError:
                raise
            except ConnectionError as lost:
                logger.warning("%s wake-up connection lost (%s); reconnecting", self._name, lost)
            except Exception:
                logger.warning(
                    "%s wake-ups unavailable; events from other processes arrive by polling",
                    self._name,
                    exc_info=True,
                )
            self._connected.clear()
            with contextlib.suppress(Exception):
                await self._transport.close()
            await asyncio.sleep(RETRY_DELAY)

    async def _publish_loop(self) -> None:
        while True:
            await self._pending.wait()
            self._pending.clear()
            position = self._latest
            if position <= self._sent:
                continue
            try:
                await self._connected.wait()
                await self._transport.send(f"{self._origin}:{position}")
                self._sent = position
            except asyncio.CancelledError:
                raise
            except Exception:
                # Dropped: the other processes will see this position at their next poll.
                logger.warning("%s wake-up for position %d not sent", self._name, position)
                await asyncio.sleep(RETRY_DELAY)
