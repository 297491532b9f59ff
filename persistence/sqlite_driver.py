"""SQLite for asyncio without a thread: statements run in the event loop's own thread, and
a wait for another connection's write lock is an asyncio sleep, not a blocked thread.

aiosqlite runs every call (cursor, execute, fetch, commit, close) on a thread of its own and
wakes the loop for each result; a point read is a few microseconds of SQLite but half a
dozen of those hops, which cost a hundred times more. SQLite itself never waits for the
network, only for locks: in WAL mode readers never wait, and writers wait only for each
other. So the connections made here have no busy timeout (SQLite answers SQLITE_BUSY at
once instead of sleeping in the loop's thread), and a statement refused that way is tried
again after an asyncio sleep, until `LOCK_TIMEOUT` has passed. Everything else runs where it
is called.

SQLAlchemy's aiosqlite dialect drives these objects through its `async_creator` hook: they
have aiosqlite's shape (awaitable cursor, execute, fetch, commit, rollback, close), and the
exceptions are sqlite3's, as aiosqlite's are.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import Any, Self

LOCK_TIMEOUT = 10.0
"""Seconds a statement may wait for another connection's write lock."""

_FIRST_RETRY = 0.000_5
_LONGEST_RETRY = 0.02

PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    # With WAL, a commit survives a crash of the process; NORMAL skips the fsync per commit
    # that only a power loss could need.
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
)


def _busy(error: sqlite3.OperationalError) -> bool:
    return getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY


async def _when_unlocked(run: Callable[[], Any], *, retry: bool = True) -> Any:
    """Run `run()`; while SQLite answers SQLITE_BUSY (another connection holds the lock),
    sleep in asyncio and try again, for at most LOCK_TIMEOUT seconds.

    Only plain SQLITE_BUSY is retried, and only where SQLite says a retry is sound: for a
    statement outside a transaction (BEGIN, BEGIN IMMEDIATE, a pragma) and for COMMIT.
    Inside a transaction the error is raised, and the unit of work rolls back. Extended
    codes (a stale WAL snapshot, for one) would fail the same way again.
    """
    try:
        return run()
    except sqlite3.OperationalError as error:
        if not (retry and _busy(error)):
            raise
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LOCK_TIMEOUT
    delay = _FIRST_RETRY
    while True:
        await asyncio.sleep(delay)
        try:
            return run()
        except sqlite3.OperationalError as error:
            if not _busy(error) or loop.time() >= deadline:
                raise
        delay = min(delay * 2, _LONGEST_RETRY)


class Cursor:
    """An aiosqlite-shaped cursor over a sqlite3 cursor."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Iterable[Any] = ()) -> Self:
        outside = not self._cursor.connection.in_transaction
        await _when_unlocked(
            lambda: self._cursor.execute(sql, parameters),  # type: ignore[arg-type]
            retry=outside,
        )
        return self

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> Self:
        # Never retried: rows that ran before the refusal would run again.
        self._cursor.executemany(sql, list(parameters))  # type: ignore[arg-type]
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def nextset(self) -> None:
        return None

    async def close(self) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class Connection:
    """An aiosqlite-shaped connection over a sqlite3 connection, used in one loop's thread.

    Transactions are begun explicitly (SQLAlchemy sends BEGIN or BEGIN IMMEDIATE, see
    `database.py`), so the sqlite3 connection runs in autocommit mode and never opens one
    on its own.
    """

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection: sqlite3.Connection | None = connection

    @property
    def _live(self) -> sqlite3.Connection:
        if self._connection is None:
            raise ValueError("Connection closed")
        return self._connection

    @property
    def isolation_level(self) -> str | None:
        return self._live.isolation_level

    def cursor(self) -> Cursor:
        return Cursor(self._live.cursor())

    async def execute(self, sql: str, parameters: Iterable[Any] = ()) -> Cursor:
        return await self.cursor().execute(sql, parameters)

    async def commit(self) -> None:
        connection = self._live
        await _when_unlocked(connection.commit)

    async def rollback(self) -> None:
        self._live.rollback()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._live.create_function(*args, **kwargs)

    async def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def stop(self) -> None:
        """Close at once (SQLAlchemy's terminate, for a connection it has given up on)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def connector(database: str, *, uri: bool = False) -> Callable[[], Awaitable[Connection]]:
    """What SQLAlchemy's `async_creator` calls for each new connection to `database`."""

    async def connect() -> Connection:
        # timeout=0: SQLite must never sleep in the loop's thread; a lock it cannot get is
        # reported at once and waited for in asyncio (`_when_unlocked`).
        connection = sqlite3.connect(
            database, timeout=0, isolation_level=None, check_same_thread=False, uri=uri
        )
        try:
            for pragma in PRAGMAS:
                await _when_unlocked(partial(connection.execute, pragma))
            mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
            if mode not in ("wal", "memory"):
                # Readers would then wait for writers, in the loop's thread.
                raise sqlite3.OperationalError(f"{database} cannot use WAL (it is in {mode})")
        except BaseException:
            connection.close()
            raise
        return Connection(connection)

    return connect
