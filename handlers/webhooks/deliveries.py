"""The deliveries book: each event owed to each webhook, and every attempt at sending it.

Its tables (webhook_deliveries, webhook_attempts) belong to the webhook reactions, beside the
reactions' checkpoints on the read-model database. The fan-out adds a delivery once per
(webhook, event), whatever the redeliveries. A courier claims due deliveries by writing its
claim on their rows with a lease (an UPDATE that only takes rows nobody holds, so of several
processes each row goes to one), sends them, and records each attempt and what is due next;
a courier that dies leaves its claims to lapse, and the rows are due again after the lease.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import ColumnElement, and_, func, insert, or_, select, text, true, update
from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.database import insert_or_nothing
from persistence.tables import webhook_attempts, webhook_deliveries

_d = webhook_deliveries.c
_a = webhook_attempts.c
MAX_ERROR = 500


class DeliveryStatus(enum.Enum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"
    """Given up: every attempt within webhook_retry_for failed."""
    CANCELLED = "CANCELLED"
    """Its webhook was disabled before it was delivered."""


@dataclass(frozen=True, slots=True)
class NewDelivery:
    id: str
    webhook_id: str
    event_id: str
    event_type: str
    position: int
    correlation_id: str
    payload: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    id: str
    webhook_id: str
    event_id: str
    correlation_id: str
    payload: str
    created_at: datetime
    attempts: int
    """Attempts made before this one."""
    claim: str
    """The claim it is held under: what recording the attempt checks is still held."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try at a delivery, and what it leaves the delivery as."""

    delivery_id: str
    webhook_id: str
    number: int
    attempted_at: datetime
    succeeded: bool
    status_code: int | None
    error: str | None
    response_excerpt: str | None
    duration_ms: int
    next_retry_at: datetime | None
    status: DeliveryStatus


class DeliveryBook(Protocol):
    """What the fan-out writes to: new deliveries, each added once."""

    async def add(self, deliveries: Sequence[NewDelivery]) -> None:
        """Add those not there yet (by webhook and event); the others are left as they are."""
        ...


class CourierBook(DeliveryBook, Protocol):
    """What a courier reads and writes (SqlDeliveries in service, a fake in unit tests)."""

    async def claim(
        self, *, now: datetime, until: datetime, token: str, limit: int
    ) -> list[ClaimedDelivery]: ...

    async def record(self, attempt: Attempt, *, token: str) -> None: ...

    async def cancel(self, delivery_id: str, *, token: str, now: datetime, reason: str) -> None: ...

    async def release(self, courier: str) -> None: ...

    async def failures_in_a_row(self, webhook_id: str) -> int: ...

    async def next_due(self, now: datetime) -> datetime | None: ...


# Any constant shared by all processes; it names the lock that makes claims take turns.
_CLAIM_LOCK_KEY = 0x0DE5_0002


def _unheld(now: datetime) -> ColumnElement[bool]:
    return or_(_d.claimed_until.is_(None), _d.claimed_until < now)


class SqlDeliveries:
    """The book on `engine` (the effects engine, which writes); its looks that write nothing
    go through `reads`, which on SQLite takes no write lock for them."""

    def __init__(self, engine: AsyncEngine, *, reads: AsyncEngine | None = None) -> None:
        self._engine = engine
        self._reads = reads or engine

    async def add(self, deliveries: Sequence[NewDelivery]) -> None:
        if not deliveries:
            return
        rows = [
            {
                "id": d.id,
                "webhook_id": d.webhook_id,
                "event_id": d.event_id,
                "event_type": d.event_type,
                "position": d.position,
                "correlation_id": d.correlation_id,
                "payload": d.payload,
                "status": DeliveryStatus.PENDING.value,
                "created_at": d.created_at,
                "due_at": d.created_at,
                "attempts": 0,
            }
            for d in deliveries
        ]
        async with self._engine.begin() as connection:
            await connection.execute(
                insert_or_nothing(connection.dialect.name, webhook_deliveries, rows)
            )

    async def claim(
        self, *, now: datetime, until: datetime, token: str, limit: int
    ) -> list[ClaimedDelivery]:
        """Hold up to `limit` due deliveries nobody holds until `until`, under `token` (a new
        one for each claim, so that what it returns is what this claim took).

        One webhook at a time: a delivery is claimed only for a webhook with none under way,
        and one a webhook, so that an endpoint slow to answer (or with a backlog) takes one
        sender, never all of them, and every other webhook's deliveries go on. Of the first
        `limit` due, a webhook's second and later wait for the next claim, which the courier
        makes at once when this one took less than it had room for.

        Claims take turns: on PostgreSQL under a transaction-scoped advisory lock, so that
        a claim sees what the one before it took (and no two processes have one webhook's
        deliveries under way at once); on SQLite its one writer does that. The UPDATE checks
        its condition again on each row as it is written all the same.
        """
        due = and_(_d.due_at <= now, _unheld(now))
        busy = select(_d.webhook_id).where(_d.claimed_until >= now)
        candidates = (
            select(_d.id, _d.webhook_id)
            .where(due, _d.webhook_id.not_in(busy))
            .order_by(_d.due_at)
            .limit(limit)
        )
        async with self._engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                await connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CLAIM_LOCK_KEY}
                )
            chosen: dict[str, str] = {}
            for delivery_id, webhook_id in await connection.execute(candidates):
                chosen.setdefault(webhook_id, delivery_id)
            if not chosen:
                return []
            await connection.execute(
                update(webhook_deliveries)
                .where(_d.id.in_(list(chosen.values())), due)
                .values(claimed_by=token, claimed_until=until)
            )
            rows = await connection.execute(
                select(
                    _d.id,
                    _d.webhook_id,
                    _d.event_id,
                    _d.correlation_id,
                    _d.payload,
                    _d.created_at,
                    _d.attempts,
                    _d.claimed_by,
                ).where(_d.id.in_(list(chosen.values())), _d.claimed_by == token)
            )
            return [ClaimedDelivery(*row) for row in rows]

    async def record(self, attempt: Attempt, *, token: str) -> None:
        """Keep the attempt, and move its delivery on (if it is still held under `token`)."""
        finished = attempt.status is not DeliveryStatus.PENDING
        async with self._engine.begin() as connection:
            moved = await connection.execute(
                update(webhook_deliveries)
                .where(_d.id == attempt.delivery_id, _d.claimed_by == token)
                .values(
                    status=attempt.status.value,
                    attempts=attempt.number,
                    due_at=attempt.next_retry_at,
                    last_status_code=attempt.status_code,
                    last_error=_cut(attempt.error),
                    finished_at=attempt.attempted_at if finished else None,
                    claimed_by=None,
                    claimed_until=None,
                )
            )
            if moved.rowcount != 1:
                # The claim lapsed and another courier took the delivery: its attempt, not
                # this one, is the delivery's (and counts toward the webhook's failures).
                return
            await connection.execute(
                insert(webhook_attempts).values(
                    delivery_id=attempt.delivery_id,
                    webhook_id=attempt.webhook_id,
                    number=attempt.number,
                    attempted_at=attempt.attempted_at,
                    succeeded=attempt.succeeded,
                    status_code=attempt.status_code,
                    error=_cut(attempt.error),
                    response_excerpt=attempt.response_excerpt,
                    duration_ms=attempt.duration_ms,
                    next_retry_at=attempt.next_retry_at,
                )
            )

    async def cancel(self, delivery_id: str, *, token: str, now: datetime, reason: str) -> None:
        """A claimed delivery whose webhook is gone or disabled: nothing more is sent."""
        async with self._engine.begin() as connection:
            await connection.execute(
                update(webhook_deliveries)
                .where(_d.id == delivery_id, _d.claimed_by == token)
                .values(**_cancelled(now, reason), claimed_by=None, claimed_until=None)
            )

    async def cancel_pending(self, webhook_id: str, *, now: datetime, reason: str) -> None:
        """Every delivery of a disabled webhook that is waiting (not one being sent)."""
        async with self._engine.begin() as connection:
            await connection.execute(
                update(webhook_deliveries)
                .where(
                    _d.webhook_id == webhook_id,
                    _d.status == DeliveryStatus.PENDING.value,
                    _unheld(now),
                )
                .values(**_cancelled(now, reason))
            )

    async def release(self, courier: str) -> None:
        """Give back what the courier's claims (`<courier>.<n>`) hold, on stopping: another
        courier may send it at once."""
        async with self._engine.begin() as connection:
            await connection.execute(
                update(webhook_deliveries)
                .where(_d.claimed_by.startswith(f"{courier}.", autoescape=True))
                .values(claimed_by=None, claimed_until=None)
            )

    async def failures_in_a_row(self, webhook_id: str) -> int:
        """The webhook's failed attempts since its last success, across its deliveries."""
        last_success = (
            select(func.coalesce(func.max(_a.id), 0))
            .where(_a.webhook_id == webhook_id, _a.succeeded == true())
            .scalar_subquery()
        )
        async with self._reads.connect() as connection:
            counted = await connection.scalar(
                select(func.count())
                .select_from(webhook_attempts)
                .where(_a.webhook_id == webhook_id, _a.id > last_success)
            )
        return int(counted or 0)

    async def next_due(self, now: datetime) -> datetime | None:
        """When the earliest delivery nobody holds falls due."""
        async with self._reads.connect() as connection:
            due: datetime | None = await connection.scalar(
                select(func.min(_d.due_at)).where(_d.due_at.is_not(None), _unheld(now))
            )
        return due


def _cancelled(now: datetime, reason: str) -> dict[str, object]:
    return {
        "status": DeliveryStatus.CANCELLED.value,
        "due_at": None,
        "finished_at": now,
        "last_error": _cut(reason),
    }


def _cut(text: str | None) -> str | None:
    return None if text is None else text[:MAX_ERROR]
