"""Wake-ups between processes: after a commit, tell the other processes' projectors (and so
their event tails) to read the log now instead of at their next poll.

A wake-up carries no event, only "the log has grown to position N". The log stays the
source of truth: a wake-up lost on the way (a dropped connection, a broker restart) delays
delivery by at most one poll interval, never loses an event. So publishing is fire and
forget, coalesced (a burst of commits sends one message with the highest position), and a
broker that is down is logged and retried, never allowed to fail or slow down a command.

Three transports: PostgreSQL LISTEN/NOTIFY (asyncpg), used by default when the database is
PostgreSQL; Redis pub/sub (`ORDERDESK_BROKER_URL=redis://...`); and, for the processes on
one SQLite file, Unix datagram sockets (one host). Each has a module of its own
(persistence/wakeup_*.py); this one says which a process uses.
"""

from __future__ import annotations

import logging
from typing import Protocol

from sqlalchemy.engine import make_url

from persistence.wakeup_broker import BrokerWakeUps, OnWake
from persistence.wakeup_local import LocalTransport, local_wake_up_directory
from persistence.wakeup_postgres import PostgresTransport
from persistence.wakeup_redis import RedisTransport

logger = logging.getLogger("orderdesk.wakeup")


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


def _asyncpg_dsn(url: str) -> str:
    """asyncpg takes a libpq-style URL, without SQLAlchemy's `+driver`."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"a wake-up broker must be redis:// or postgresql://, not {url!r}")
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)
