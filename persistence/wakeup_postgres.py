"""Wake-ups over PostgreSQL's LISTEN/NOTIFY: the default transport when the database (or the
broker URL) is PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from persistence.wakeup_broker import CHANNEL


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
