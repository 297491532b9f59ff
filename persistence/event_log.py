"""The append-only event log: the source of truth for projections and subscriptions."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.event_codec import EventCodec
from persistence.tables import event_log

# Any constant shared by all writers; it names the lock that orders appends on PostgreSQL.
_APPEND_LOCK_KEY = 0x0DE5_C0DE


@dataclass(frozen=True, slots=True)
class NewEvent:
    stream_type: str
    stream_id: str
    stream_version: int
    event: object


@dataclass(frozen=True, slots=True)
class StoredEvent:
    position: int
    event_id: str
    stream_type: str
    stream_id: str
    stream_version: int
    event_type: str
    event: object
    occurred_at: datetime
    correlation_id: str
    command: str | None = None
    """The command that wrote it (None for events older than this column)."""
    causation_id: str | None = None
    """The event a reaction reacted to when it wrote this one; None for a request's own."""


_AFTER = (
    select(event_log)
    .where(event_log.c.position > bindparam("after"))
    .order_by(event_log.c.position)
    .limit(bindparam("limit"))
)
_BETWEEN = (
    select(event_log)
    .where(event_log.c.position > bindparam("after"), event_log.c.position <= bindparam("up_to"))
    .order_by(event_log.c.position)
    .limit(bindparam("limit"))
)


class EventLog:
    def __init__(self, codec: EventCodec) -> None:
        self.codec = codec

    async def append(
        self,
        connection: AsyncConnection,
        events: Sequence[NewEvent],
        *,
        occurred_at: datetime,
        correlation_id: str,
        command: str | None = None,
        causation_id: str | None = None,
    ) -> int:
        """Append in the caller's transaction; returns the last position written (0 if none).

        Readers follow the log by position and never look back, so a position must not
        become visible after a higher one. SQLite has one writer at a time, which gives
        that for free. On PostgreSQL, sequence values are handed out before commit, and
        transactions may commit in another order; a transaction-scoped advisory lock,
        taken here just before the insert and released by the commit, makes appends (and
        so their commits) happen one after another, in position order.
        """
        if not events:
            return 0
        if connection.dialect.name == "postgresql":
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _APPEND_LOCK_KEY}
            )
        rows = [
            {
                "event_id": str(uuid.uuid4()),
                "stream_type": new.stream_type,
                "stream_id": new.stream_id,
                "stream_version": new.stream_version,
                "event_type": self.codec.name_of(new.event),
                "payload": self.codec.encode(new.event),
                "occurred_at": occurred_at,
                "correlation_id": correlation_id,
                "command": command,
                "causation_id": causation_id,
            }
            for new in events
        ]
        # One statement for the whole batch (an order of 50 lines appends 51 events), with
        # positions handed out in the order given; the append lock is held the less.
        result = await connection.execute(
            insert(event_log).returning(event_log.c.position, sort_by_parameter_order=True),
            rows,
        )
        positions: list[int] = list(result.scalars())
        return max(positions)

    async def read(
        self, connection: AsyncConnection, *, after: int, up_to: int | None = None, limit: int = 500
    ) -> list[StoredEvent]:
        """Events with `after < position <= up_to`, in position order, at most `limit`."""
        if up_to is None:
            rows = await connection.execute(_AFTER, {"after": after, "limit": limit})
        else:
            rows = await connection.execute(
                _BETWEEN, {"after": after, "up_to": up_to, "limit": limit}
            )
        return [
            StoredEvent(
                position=row.position,
                event_id=row.event_id,
                stream_type=row.stream_type,
                stream_id=row.stream_id,
                stream_version=row.stream_version,
                event_type=row.event_type,
                event=self.codec.decode(row.event_type, row.payload),
                occurred_at=row.occurred_at,
                correlation_id=row.correlation_id,
                command=row.command,
                causation_id=row.causation_id,
            )
            for row in rows
        ]

    async def head(self, connection: AsyncConnection) -> int:
        """The highest position written so far (0 for an empty log)."""
        result = await connection.execute(select(func.coalesce(func.max(event_log.c.position), 0)))
        return int(result.scalar_one())
