"""Engines for the embedded SQLite default and for PostgreSQL, configured for this service."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Insert, Table, event
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from persistence import sqlite_driver


def is_unavailable(error: BaseException) -> bool:
    """Whether `error` says the database did not answer (in time), rather than refusing
    what was asked: a timeout, a connection lost or refused."""
    if isinstance(error, TimeoutError | SQLAlchemyTimeout | ConnectionError):
        return True
    if isinstance(error, DBAPIError):
        return bool(error.connection_invalidated) or isinstance(
            error.orig, TimeoutError | ConnectionError | OSError
        )
    return False


def violates_unique(error: IntegrityError, table: str, column: str) -> bool:
    """Whether `error` is the unique constraint on `table.column` (named by the tables'
    naming convention), not some other integrity error. PostgreSQL names the constraint;
    SQLite names the column, in a message whose form it documents."""
    cause: BaseException | None = error.orig
    while cause is not None:
        if getattr(cause, "constraint_name", None) == f"uq_{table}_{column}":
            return True
        cause = cause.__cause__
    return f"UNIQUE constraint failed: {table}.{column}" in str(error.orig)


def insert_or_nothing(
    dialect: str, table: Table, values: dict[str, Any] | list[dict[str, Any]]
) -> Insert:
    """An INSERT (of one row, or of several) that does nothing for a row whose key is taken:
    another process (or an earlier delivery of the same event) wrote it first, and what is
    stored stands."""
    if dialect == "postgresql":
        return postgresql_insert(table).values(values).on_conflict_do_nothing()
    return sqlite_insert(table).values(values).on_conflict_do_nothing()


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(
    url: str,
    *,
    for_writes: bool = False,
    for_scans: bool = False,
    echo: bool = False,
    timeout: float = 5.0,
) -> AsyncEngine:
    """An engine for `url`; on SQLite, `for_writes` makes every transaction BEGIN IMMEDIATE.

    SQLite allows one writer at a time. A deferred transaction that reads and then
    writes can find, at its first write, that another writer committed since its read
    snapshot, and fails with "database is locked" however long it waits. BEGIN IMMEDIATE
    takes the write lock up front (waiting for it up to `sqlite_driver.LOCK_TIMEOUT`), so a
    write transaction's reads are current and its checks (version, stock) hold until it
    commits. Reads use a separate engine whose transactions stay deferred, so they never
    wait for writers (WAL).

    SQLite's statements run in the loop's thread (`sqlite_driver`): lookups by id and
    writes take microseconds there. `for_scans` is for reads whose cost grows with the
    data (counts, searches, pages of lists): on SQLite they run on aiosqlite's thread,
    where SQLite lets go of the GIL, so a long scan never holds up the other requests.

    `timeout` bounds, in seconds, a wait for a connection from the pool, and on PostgreSQL
    connecting and each statement too: a database that stops answering (a frozen
    connection, open and silent) fails requests with `DatabaseUnavailable` in that time
    instead of holding them for as long as it stays silent.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(
            url,
            echo=echo,
            hide_parameters=True,
            pool_pre_ping=True,
            pool_timeout=timeout,
            connect_args={"timeout": timeout, "command_timeout": timeout},
        )
    begin = "BEGIN IMMEDIATE" if for_writes else "BEGIN"
    if for_scans:
        engine = create_async_engine(url, echo=echo, hide_parameters=True)
        _pragmas_on_connect(engine)
    else:
        database = parsed.database or ":memory:"
        uri = parsed.query.get("uri") in ("true", "1")
        in_memory = database == ":memory:" or parsed.query.get("mode") == "memory"
        # Connections cost a file handle each and no thread; enough that concurrent
        # requests (each a read, a key check and a write transaction) do not open and close
        # overflow connections all the time.
        pool: dict[str, Any] = (
            {} if in_memory else {"pool_size": 32, "max_overflow": 32, "pool_timeout": timeout}
        )
        engine = create_async_engine(
            url,
            echo=echo,
            # A failed statement's error (and the log line of an internal error) never
            # carries its values: emails, webhook secrets, addresses.
            hide_parameters=True,
            async_creator=sqlite_driver.connector(database, uri=uri),
            **pool,
        )

    # Hand BEGIN to SQLAlchemy instead of the driver's legacy mode, which would skip BEGIN
    # before SELECTs and break repeatable reads.
    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection: Connection) -> None:
        connection.exec_driver_sql(begin)

    return engine


def _pragmas_on_connect(engine: AsyncEngine) -> None:
    """aiosqlite's connections: the same pragmas; a busy timeout is harmless on its thread."""

    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: object) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in sqlite_driver.PRAGMAS:
            cursor.execute(pragma)
        cursor.execute(f"PRAGMA busy_timeout={int(sqlite_driver.LOCK_TIMEOUT * 1000)}")
        cursor.close()
