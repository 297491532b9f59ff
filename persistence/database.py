"""Engines for the embedded SQLite default and for PostgreSQL, configured for this service."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 10_000


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, *, for_writes: bool = False, echo: bool = False) -> AsyncEngine:
    """An engine for `url`; on SQLite, `for_writes` makes every transaction BEGIN IMMEDIATE.

    SQLite allows one writer at a time. A deferred transaction that reads and then
    writes can find, at its first write, that another writer committed since its read
    snapshot, and fails with "database is locked" however long the busy timeout is.
    BEGIN IMMEDIATE takes the write lock up front (waiting up to the busy timeout), so a
    write transaction's reads are current and its checks (version, stock) hold until it
    commits. Reads use a separate engine whose transactions stay deferred, so they never
    wait for writers (WAL).
    """
    engine = create_async_engine(url, echo=echo, pool_pre_ping=not is_sqlite(url))
    if is_sqlite(url):
        _configure_sqlite(engine, begin="BEGIN IMMEDIATE" if for_writes else "BEGIN")
    return engine


def _configure_sqlite(engine: AsyncEngine, *, begin: str) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: object) -> None:
        # Hand BEGIN to SQLAlchemy (below) instead of the driver's legacy mode, which
        # would skip BEGIN before SELECTs and break repeatable reads.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection: Connection) -> None:
        connection.exec_driver_sql(begin)
