"""SQLite in the loop's thread: a wait for another connection's write lock never blocks the
event loop, and gives up after LOCK_TIMEOUT with SQLite's own error."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from persistence import sqlite_driver
from persistence.database import create_engine


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "locks.db"
    setup = sqlite3.connect(path, isolation_level=None)
    try:
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE counter (n INTEGER)")
        setup.execute("INSERT INTO counter VALUES (0)")
    finally:
        setup.close()
    return path


TICK = 0.005


@asynccontextmanager
async def loop_ticks() -> AsyncIterator[list[int]]:
    """Counts how often the loop got to run a task every TICK seconds meanwhile; a loop
    held up by SQLite would count none while it is."""
    ticks = [0]

    async def tick() -> None:
        while True:
            await asyncio.sleep(TICK)
            ticks[0] += 1

    ticker = asyncio.create_task(tick())
    try:
        yield ticks
    finally:
        ticker.cancel()


def _hold_write_lock(path: Path) -> sqlite3.Connection:
    """Another process's writer, as far as SQLite can tell."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    return holder


async def test_a_writer_waits_for_the_lock_while_the_loop_goes_on(database: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{database}", for_writes=True)
    holder = _hold_write_lock(database)

    async def release_later() -> None:
        await asyncio.sleep(0.3)
        holder.execute("UPDATE counter SET n = n + 10")
        holder.execute("COMMIT")

    releaser = asyncio.create_task(release_later())
    try:
        async with loop_ticks() as ticks, engine.begin() as connection:
            await connection.execute(text("UPDATE counter SET n = n + 1"))
        async with engine.connect() as connection:
            total = await connection.scalar(text("SELECT n FROM counter"))
    finally:
        await releaser
        holder.close()
        await engine.dispose()
    # Both writes, one after the other; and the loop ran all along (a blocked loop would
    # have ticked not at all while the lock was held).
    assert total == 11
    assert ticks[0] >= 20


async def test_a_writer_gives_up_after_the_lock_timeout(
    database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_driver, "LOCK_TIMEOUT", 0.2)
    engine = create_engine(f"sqlite+aiosqlite:///{database}", for_writes=True)
    holder = _hold_write_lock(database)
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(OperationalError, match="database is locked"):
            async with engine.begin() as connection:
                await connection.execute(text("UPDATE counter SET n = n + 1"))
        waited = asyncio.get_running_loop().time() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        await engine.dispose()
    assert 0.2 <= waited < 2.0


async def test_readers_never_wait_for_a_writer(database: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    holder = _hold_write_lock(database)
    holder.execute("UPDATE counter SET n = 99")  # not committed: readers see the old row
    try:
        async with engine.connect() as connection:
            assert await connection.scalar(text("SELECT n FROM counter")) == 0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        await engine.dispose()


async def test_a_refusal_inside_a_transaction_is_raised_at_once(database: Path) -> None:
    """SQLite allows a retry after SQLITE_BUSY only outside a transaction or for COMMIT; a
    deferred transaction that finds the lock taken at its first write is refused at once."""
    engine = create_engine(f"sqlite+aiosqlite:///{database}")  # deferred BEGIN
    holder = _hold_write_lock(database)

    async def read_then_write() -> None:
        async with engine.begin() as connection:
            await connection.execute(text("SELECT n FROM counter"))
            await connection.execute(text("UPDATE counter SET n = n + 1"))

    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(OperationalError, match="database is locked"):
            await read_then_write()
        assert asyncio.get_running_loop().time() - started < sqlite_driver.LOCK_TIMEOUT / 2
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        await engine.dispose()


async def test_an_in_memory_database_works() -> None:
    engine = create_engine("sqlite+aiosqlite://")
    try:
        async with engine.connect() as connection:
            assert await connection.scalar(text("SELECT 1")) == 1
    finally:
        await engine.dispose()


async def test_a_long_scan_runs_beside_the_loop(database: Path) -> None:
    """Reads whose cost grows with the data go to aiosqlite's thread (`for_scans`): the
    loop goes on serving while SQLite counts."""
    engine = create_engine(f"sqlite+aiosqlite:///{database}", for_scans=True)
    slow_count = text(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000000) "
        "SELECT count(*) FROM n"
    )
    try:
        started = asyncio.get_running_loop().time()
        async with loop_ticks() as ticks, engine.connect() as connection:
            assert await connection.scalar(slow_count) == 3_000_000
        took = asyncio.get_running_loop().time() - started
    finally:
        await engine.dispose()
    # The loop ticked through the scan, about as often as it would have idle.
    assert ticks[0] >= took / TICK / 4
