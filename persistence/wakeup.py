"""Wake-ups between processes: after a commit, tell the other processes' projectors (and so
their event tails) to read the log now instead of at their next poll.

A wake-up carries no event, only "the log has grown to position N". The log stays the
source of truth: a wake-up lost on the way (a dropped connection, a broker restart) delays
delivery by at most one poll interval, never loses an event. So publishing is fire and
forget, coalesced (a burst of commits sends one message with the highest position), and a
broker that is down is logged and retried, never allowed to fail or slow down a command.

Three transports: PostgreSQL LISTEN/NOTIFY (asyncpg), used by default when the database is
PostgreSQL; Redis pub/sub (`ORDERDESK_BROKER_URL=redis://...`); and, for the processes on
one SQLite file, Unix datagram sockets (one host).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.engine import make_url

logger = logging.getLogger("orderdesk.wakeup")

CHANNEL = "orderdesk_events"
OnWake = Callable[[int | None], None]
"""Told the position the log has grown to, if the message says."""
MAX_SOCKET_PATH = 108
"""Bytes a Unix socket's path may take (sun_path, with its terminating NUL)."""
RETRY_DELAY = 0.5
"""Seconds between attempts to reach a broker that is away (a lost wake-up costs a poll)."""


class WakeUps(Protocol):
    """The port the composition root wires: `publish` after each commit, `on_wake` on receipt."""

    async def start(self, on_wake: OnWake) -> None: ...

    def publish(self, position: int) -> None: ...

    async def stop(self) -> None: ...


class NoWakeUps:
    """One process: the projector is woken in-process by the unit of work already."""

    async def start(self, on_wake: OnWake) -> None:
        pass

    def publish(self, position: int) -> None:
        pass

    async def stop(self) -> None:
        pass


class _Transport(Protocol):
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

    def __init__(self, transport: _Transport, *, name: str) -> None:
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


class PostgresTransport:
    """LISTEN/NOTIFY on one dedicated asyncpg connection (outside SQLAlchemy's pool, as a
    listening connection must stay checked out for its whole life)."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._connection: Any = None
        self._lost: asyncio.Event = asyncio.Event()

    async def connect(self, on_message: Callable[[str], None]) -> None:
        import asyncpg  # type: ignore[import-untyped]  # noqa: PLC0415 - PostgreSQL only

        self._lost = asyncio.Event()
        lost = self._lost
        connection = await asyncpg.connect(self._dsn, timeout=10)
        connection.add_termination_listener(lambda _connection: lost.set())

        def received(_connection: object, _pid: int, _channel: str, payload: str) -> None:
            on_message(payload)

        await connection.add_listener(CHANNEL, received)
        self._connection = connection

    async def wait_closed(self) -> None:
        await self._lost.wait()

    async def send(self, payload: str) -> None:
        if self._connection is None:
            raise ConnectionError("not connected")
        await self._connection.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            try:
                await asyncio.wait_for(connection.close(), timeout=5)
            except Exception:
                connection.terminate()


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


class LocalTransport:
    """Unix datagram sockets, one per process, in a directory of their own for one SQLite
    file: the workers of `orderdesk serve --workers N` on one host.

    Only one process applies each projection (persistence/projection_leases.py), so a
    write in another must reach it at once, or that write would wait for its poll. A
    socket left by a process that died is removed by the first send that finds it dead.
    """

    @staticmethod
    def unusable(directory: Path) -> str | None:
        """Why sockets cannot be made in `directory`, if they cannot."""
        if len(os.fsencode(directory)) + len("/4194304-0123abcd") >= MAX_SOCKET_PATH:
            return f"the socket paths under {directory} would be too long"
        try:
            owner = directory.stat().st_uid
        except FileNotFoundError:
            return None  # made on connecting
        except OSError as error:
            return f"cannot use {directory}: {error}"
        if owner != os.getuid():
            return f"{directory} belongs to another user"
        return None

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._socket: socket.socket | None = None
        self._path: Path | None = None
        self._closed = asyncio.Event()

    async def connect(self, on_message: Callable[[str], None]) -> None:
        self._directory.mkdir(mode=0o700, exist_ok=True)
        if self._directory.stat().st_uid != os.getuid():
            raise PermissionError(f"{self._directory} belongs to another user")
        path = self._directory / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        endpoint = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        endpoint.setblocking(False)
        endpoint.bind(str(path))
        self._socket, self._path = endpoint, path
        self._closed = asyncio.Event()

        def readable() -> None:
            while True:
                try:
                    data = endpoint.recv(512)
                except (BlockingIOError, OSError):
                    return
                on_message(data.decode(errors="replace"))

        asyncio.get_running_loop().add_reader(endpoint.fileno(), readable)

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def send(self, payload: str) -> None:
        endpoint = self._socket
        if endpoint is None:
            raise ConnectionError("not connected")
        data = payload.encode()
        for peer in self._directory.iterdir():
            if peer == self._path:
                continue
            try:
                endpoint.sendto(data, str(peer))
            except (ConnectionRefusedError, FileNotFoundError):
                peer.unlink(missing_ok=True)  # its process is gone
            except BlockingIOError:
                pass  # its queue is full of wake-ups: it is awake already

    async def close(self) -> None:
        endpoint, self._socket = self._socket, None
        if endpoint is not None:
            asyncio.get_running_loop().remove_reader(endpoint.fileno())
            endpoint.close()
        if self._path is not None:
            self._path.unlink(missing_ok=True)
            self._path = None
            # The last one out removes the directory; a process still there keeps it.
            with contextlib.suppress(OSError):
                self._directory.rmdir()
        self._closed.set()


def wake_ups_for(database_url: str, broker_url: str | None) -> WakeUps:
    """Redis if `broker_url` says so, else LISTEN/NOTIFY on a PostgreSQL broker or database,
    else local sockets for a SQLite file (none for a database in memory: one process)."""
    if broker_url:
        if broker_url.startswith(("redis://", "rediss://", "unix://")):
            return BrokerWakeUps(RedisTransport(broker_url), name="redis")
        return BrokerWakeUps(PostgresTransport(_asyncpg_dsn(broker_url)), name="postgresql")
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        return BrokerWakeUps(PostgresTransport(_asyncpg_dsn(database_url)), name="postgresql")
    if url.database in (None, "", ":memory:"):
        return NoWakeUps()
    directory = local_wake_up_directory(url.database)
    if (problem := LocalTransport.unusable(directory)) is not None:
        # Once, not at every retry: nothing will change while the process runs.
        logger.warning(
            "no wake-ups between the processes on this SQLite file (%s); a write made in "
            "one reaches the others at their next poll",
            problem,
        )
        return NoWakeUps()
    return BrokerWakeUps(LocalTransport(directory), name="local")


def local_wake_up_directory(database: str) -> Path:
    """Where the processes on one SQLite file meet; in the temporary directory, as a
    socket's path must be short (108 bytes), named by the file's resolved path."""
    digest = hashlib.sha256(str(Path(database).resolve()).encode()).hexdigest()[:16]
    # The user's own: another user could otherwise make it first, and own it.
    return Path(tempfile.gettempdir()) / f"orderdesk-wakeups-{os.getuid()}-{digest}"


def _asyncpg_dsn(url: str) -> str:
    """asyncpg takes a libpq-style URL, without SQLAlchemy's `+driver`."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"a wake-up broker must be redis:// or postgresql://, not {url!r}")
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)
