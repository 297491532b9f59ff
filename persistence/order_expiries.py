"""The due times of pending orders (`order_expiries`), and what the log says became of one.

A row is added when an order is placed and settled once its fate is known: cancelled by the
timer, or left alone because someone decided first. Processes share the due rows by claiming
them: a claim is an UPDATE that only succeeds on a row nobody holds (its `claimed_until`
passed or unset), checked by its row count, so of two processes that saw the same due row
one sends the cancel. A claim is a lease, not a lock: a process that dies holding one only
delays the order until the lease runs out, and the order's version keeps a second send from
doing anything (the caller's `expected_version`). A lease one process set is read against
another's clock: hosts' clocks must agree to well within a lease (the timer's is minutes).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Insert, and_, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from persistence.database import insert_or_nothing
from persistence.tables import event_log, order_expiries, orders

_table = order_expiries.c


@dataclass(frozen=True, slots=True)
class DueOrder:
    """What the timer needs to cancel one order, as it was when the order was placed."""

    order_id: str
    due_at: datetime
    expected_version: int
    correlation_id: str
    placed_event_id: str
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class Expiry:
    """A row as it stands, for the reactions that settle it and for operators' eyes."""

    due: DueOrder
    outcome: str | None
    settled_at: datetime | None
    last_error: str | None
    claimed_by: str | None
    claimed_until: datetime | None


def add_due(connection: AsyncConnection, due: DueOrder) -> Insert:
    """The row of a newly placed order; nothing when it is there already (a redelivery)."""
    values = {
        "order_id": due.order_id,
        "due_at": due.due_at,
        "expected_version": due.expected_version,
        "correlation_id": due.correlation_id,
        "placed_event_id": due.placed_event_id,
        "attempts": due.attempts,
    }
    return insert_or_nothing(connection.dialect.name, order_expiries, values)


async def expiry_of(connection: AsyncConnection, order_id: str) -> Expiry | None:
    row = (
        (await connection.execute(select(order_expiries).where(_table.order_id == order_id)))
        .mappings()
        .first()
    )
    if row is None:
        return None
    return Expiry(
        DueOrder(
            row["order_id"],
            row["due_at"],
            row["expected_version"],
            row["correlation_id"],
            row["placed_event_id"],
            row["attempts"],
        ),
        row["outcome"],
        row["settled_at"],
        row["last_error"],
        row["claimed_by"],
        row["claimed_until"],
    )


async def settle(connection: AsyncConnection, order_id: str, *, outcome: str, at: datetime) -> bool:
    """Mark an unsettled row settled with `outcome`; whether there was one to settle."""
    result = await connection.execute(
        update(order_expiries)
        .where(_table.order_id == order_id, _table.settled_at.is_(None))
        .values(outcome=outcome, settled_at=at)
    )
    return result.rowcount == 1


def _free_and_due(now: datetime) -> ColumnElement[bool]:
    return and_(
        _table.settled_at.is_(None),
        _table.due_at <= now,
        or_(_table.claimed_until.is_(None), _table.claimed_until < now),
    )


async def claim_due(
    connection: AsyncConnection,
    *,
    now: datetime,
    until: datetime,
    claimer: str,
    limit: int,
) -> list[DueOrder]:
    """Claim, until `until`, at most `limit` rows due by `now` that nobody holds; the
    earliest due first. Each claim is checked by its row count: a row another process
    claimed between the look and the claim is not this one's."""
    candidates = (
        select(_table.order_id).where(_free_and_due(now)).order_by(_table.due_at).limit(limit)
    )
    if connection.dialect.name == "postgresql":
        # Rows another process is claiming right now are its; no need to queue behind it.
        candidates = candidates.with_for_update(skip_locked=True)
    found = (await connection.execute(candidates)).scalars().all()
    claimed: list[str] = []
    for order_id in found:
        result = await connection.execute(
            update(order_expiries)
            .where(_table.order_id == order_id, _free_and_due(now))
            .values(claimed_by=claimer, claimed_until=until)
        )
        if result.rowcount == 1:
            claimed.append(order_id)
    if not claimed:
        return []
    rows = await connection.execute(
        select(
            _table.order_id,
            _table.due_at,
            _table.expected_version,
            _table.correlation_id,
            _table.placed_event_id,
            _table.attempts,
        )
        .where(_table.order_id.in_(claimed))
        .order_by(_table.due_at)
    )
    return [DueOrder(*row) for row in rows]


def _held_by(order_id: str, claimer: str) -> ColumnElement[bool]:
    return and_(
        _table.order_id == order_id,
        _table.claimed_by == claimer,
        _table.claimed_until.is_not(None),
    )


async def record_outcome(
    connection: AsyncConnection, order_id: str, *, claimer: str, outcome: str, at: datetime
) -> bool:
    """Settle a row `claimer` holds. False when the claim was lost meanwhile (its lease ran
    out and another process took the row): that process records what it found instead."""
    result = await connection.execute(
        update(order_expiries)
        .where(_held_by(order_id, claimer))
        .values(outcome=outcome, settled_at=at, claimed_until=None, last_error=None)
    )
    return result.rowcount == 1


async def record_failure(
    connection: AsyncConnection,
    order_id: str,
    *,
    claimer: str,
    error: str,
    retry_at: datetime,
) -> bool:
    """Let go of a row `claimer` holds, to be tried again at `retry_at`."""
    result = await connection.execute(
        update(order_expiries)
        .where(_held_by(order_id, claimer), _table.settled_at.is_(None))
        .values(
            attempts=_table.attempts + 1,
            last_error=error,
            due_at=retry_at,
            claimed_until=None,
        )
    )
    return result.rowcount == 1


async def next_due_at(connection: AsyncConnection, *, now: datetime) -> datetime | None:
    """When the earliest unsettled row that nobody holds at `now` falls due; rows another
    process holds are its to settle, or free again once its lease runs out."""
    due: datetime | None = await connection.scalar(
        select(func.min(_table.due_at)).where(
            _table.settled_at.is_(None),
            or_(_table.claimed_until.is_(None), _table.claimed_until < now),
        )
    )
    return due


# ---------------------------------------------------------------- the write side's account


@dataclass(frozen=True, slots=True)
class OrderFate:
    """What the write side says of an order the timer could not cancel as it expected."""

    status: str | None
    """The order's status now; None when there is no such order."""
    cancelled_by: bool
    """Whether the log holds a cancel of it caused by the event the timer answers: its own
    cancel, sent before (by a process that stopped before recording it)."""


async def order_fate(
    connection: AsyncConnection, order_id: str, *, cause: str, cancel_type: str
) -> OrderFate:
    """Read on the write database: `cause` is the OrderPlaced event's id, `cancel_type` the
    name the log gives OrderCancelled."""
    status = await connection.scalar(select(orders.c.status).where(orders.c.id == order_id))
    ours = await connection.scalar(
        select(
            exists().where(
                event_log.c.stream_id == order_id,
                event_log.c.event_type == cancel_type,
                event_log.c.causation_id == cause,
            )
        )
    )
    return OrderFate(status, bool(ours))
