"""Pending orders that nobody confirmed are cancelled as expired (ORDERDESK_PENDING_ORDER_TTL).

A process manager in two halves, both driven by what is stored, never by a timer in memory,
so that a restart loses no expiry and doubles none:

- `keep_due_times`, the reaction `orders.pending_expiry`: an order placed gets a row in
  `order_expiries`, due `ttl` seconds after it was placed, holding the order's version as
  placed; an order confirmed, shipped, delivered or cancelled settles its row, so the timer
  sends nothing for it. One handler for all five events: its one checkpoint keeps an order's
  events in order, so a row is never settled before it is added.
- `PendingOrderTimer`, the feature's worker: claims the rows that are due and sends each an
  ordinary `CancelOrder(reason="expired")` as the system, expecting the version the order
  had when placed. An order that moved on meanwhile (confirmed a moment before) refuses it
  with a conflict, which is someone else deciding first, not a failure. The same holds for
  the timer's own second attempt after a crash between the cancel and its record: the
  cancel moved the version, so the second one does nothing, and the log tells that the
  cancel was the timer's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from domain.errors import InvalidTransition, NotFound, VersionConflict
from domain.orders import (
    OrderCancelled,
    OrderConfirmed,
    OrderDelivered,
    OrderPlaced,
    OrderShipped,
    OrderStatus,
)
from handlers.feature import Wiring, Worker
from handlers.orders.commands import CancelOrder
from handlers.pipeline import ReadModelLagging
from handlers.reactions import SYSTEM, Committed, committed
from handlers.transaction import CAUSED_BY
from mediator import ConfigurationError, Context, Mediator, Registry
from persistence.order_expiries import (
    DueOrder,
    OrderFate,
    add_due,
    claim_due,
    expiry_of,
    next_due_at,
    order_fate,
    record_failure,
    record_outcome,
    settle,
)
from persistence.projection_leases import process_name

logger = logging.getLogger("orderdesk.orders.expiry")

HANDLER = "orders.pending_expiry"
EXPIRED = "expired"
"""The reason an expired order's cancel gives."""

CANCELLED = "cancelled"
"""The outcome of a row whose order the timer cancelled."""
NO_SUCH_ORDER = "left alone: no such order"

BATCH = 10
"""Rows one claim takes at most."""
CLAIM_LEASE = timedelta(minutes=2)
"""How long a claim holds: longer than a batch of cancels takes (each waits, bounded, for
the read models); a process that dies holding rows delays them by at most this."""
MAX_RETRY_DELAY = 3_600.0
"""Seconds between attempts at an order whose cancel keeps failing, at most."""
MIN_PAUSE = 0.05
"""Seconds a round that found rows due but claimed none waits at least: they are being
claimed by another process, which has them a moment later."""
STOP_WITHIN = 5.0
"""Seconds stopping waits for the cancel in hand; past it, the lease runs out instead."""


def left_alone(status: str) -> str:
    """The outcome of a row whose order someone else decided first."""
    return f"left alone: {status.lower()}"


_SETTLED_BY = {
    OrderConfirmed: left_alone(OrderStatus.CONFIRMED.value),
    OrderShipped: left_alone(OrderStatus.SHIPPED.value),
    OrderDelivered: left_alone(OrderStatus.DELIVERED.value),
}
TRACKED = (OrderPlaced, OrderConfirmed, OrderShipped, OrderDelivered, OrderCancelled)


# ---------------------------------------------------------------- the due times


async def keep_due_times(
    notification: Committed[Any],
    ctx: Context,
    *,
    ttl: float,
    engine: AsyncEngine,
    clock: Callable[[], datetime],
) -> None:
    """Add the row of an order placed, settle it when the order moves on. Both are safe to
    repeat: a row is added only once, and settled only while unsettled."""
    event = notification.event
    if isinstance(event, OrderPlaced):
        due = DueOrder(
            order_id=notification.stream_id,
            due_at=notification.occurred_at + timedelta(seconds=ttl),
            expected_version=notification.stream_version,
            correlation_id=notification.correlation_id,
            placed_event_id=notification.event_id,
        )
        async with engine.begin() as connection:
            await connection.execute(add_due(connection, due))
        return
    if isinstance(event, OrderCancelled):
        outcome = await _cancel_outcome(notification, engine=engine)
        if outcome is None:
            return
    else:
        outcome = _SETTLED_BY[type(event)]
    async with engine.begin() as connection:
        await settle(connection, notification.stream_id, outcome=outcome, at=clock())


async def _cancel_outcome(notification: Committed[Any], *, engine: AsyncEngine) -> str | None:
    """Whose cancel it was: the timer's own (caused by the row's OrderPlaced) or another's.
    None when the order has no row, or one settled already."""
    async with engine.connect() as connection:
        expiry = await expiry_of(connection, notification.stream_id)
    if expiry is None or expiry.settled_at is not None:
        return None
    if notification.causation_id == expiry.due.placed_event_id:
        return CANCELLED
    return left_alone(OrderStatus.CANCELLED.value)


def subscribe_due_times(registry: Registry, wiring: Wiring) -> None:
    """Subscribe `orders.pending_expiry` when orders expire (pending_order_ttl is set)."""
    ttl = wiring.reacting.pending_order_ttl
    if ttl is None:
        return
    if wiring.effects_engine is None:
        # Set, and silently never expiring, would be worse than not starting.
        raise ConfigurationError("orders expire only where reactions keep their due times")
    handler = partial(keep_due_times, ttl=ttl, engine=wiring.effects_engine, clock=wiring.clock)
    for event_type in TRACKED:
        registry.subscribe(committed(event_type), handler, name=HANDLER)


# ---------------------------------------------------------------- what came of a cancel

SOMEONE_DECIDED = (VersionConflict, InvalidTransition)
"""The refusals that mean the order is no longer as it was placed."""


def outcome_of(error: BaseException | None, fate: OrderFate | None = None) -> str | None:
    """The outcome of one attempt at a due order, from what its cancel raised (None: it was
    cancelled) and, after a refusal in SOMEONE_DECIDED, what the write side says of the
    order; None when the attempt failed and is to be made again later."""
    if error is None or isinstance(error, ReadModelLagging):
        # Lagging read models: the cancel is committed, only not shown yet.
        return CANCELLED
    if isinstance(error, NotFound):
        return NO_SUCH_ORDER
    if isinstance(error, SOMEONE_DECIDED) and fate is not None:
        return _decided_first(fate)
    return None


def _decided_first(fate: OrderFate) -> str:
    if fate.cancelled_by:
        # The timer's own cancel, whose outcome a stopped process did not record.
        return CANCELLED
    if fate.status is None:
        return NO_SUCH_ORDER
    return left_alone(fate.status)


def retry_delay(attempts: int, *, first: float) -> float:
    """Seconds before the next attempt after `attempts` failed ones: doubling, bounded."""
    return min(first * 2.0 ** min(attempts, 32), MAX_RETRY_DELAY)


def _described(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:2_000]


@dataclass(frozen=True, slots=True)
class Attempt:
    outcome: str | None
    """None when the attempt failed and is to be made again."""
    error: BaseException | None = None


async def cancel_expired(
    mediator: Mediator, due: DueOrder, *, fate: Callable[[DueOrder], Awaitable[OrderFate]]
) -> Attempt:
    """Send one due order's cancel, as the system and caused by its OrderPlaced event, and
    tell what came of it; `fate` says what the write side holds after a refusal."""
    ctx = Context(identity=SYSTEM, correlation_id=due.correlation_id)
    # Its events record the OrderPlaced event as their cause: `orderdesk trace` follows.
    ctx.set(CAUSED_BY, due.placed_event_id)
    command = CancelOrder(due.order_id, reason=EXPIRED, expected_version=due.expected_version)
    error: BaseException | None = None
    found: OrderFate | None = None
    try:
        await mediator.send(command, ctx)
    except Exception as refused:
        error = refused
    if isinstance(error, SOMEONE_DECIDED):
        try:
            found = await fate(due)
        except Exception as lookup:
            error = lookup
    return Attempt(outcome_of(error, found), error)


# ---------------------------------------------------------------- the timer


class PendingOrderTimer:
    """The worker that cancels due orders: a round every `poll_interval` seconds, sooner
    when the earliest due row falls due sooner. Several processes may run one each."""

    def __init__(
        self,
        mediator: Mediator,
        *,
        engine: AsyncEngine,
        log_engine: AsyncEngine,
        clock: Callable[[], datetime],
        poll_interval: float,
        read_engine: AsyncEngine | None = None,
        claimer: str | None = None,
    ) -> None:
        """`engine` writes the due rows, `read_engine` (by default `engine`) looks at them,
        `log_engine` reads the write side's account of an order."""
        self._mediator = mediator
        self._engine = engine
        self._read_engine = read_engine or engine
        self._log_engine = log_engine
        self._clock = clock
        self._poll_interval = poll_interval
        self.claimer = claimer or process_name()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="pending order timer")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), STOP_WITHIN)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                pause = await self._round()
            except Exception as error:
                logger.warning("pending order timer: a round failed: %s", _described(error))
                pause = self._poll_interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), pause)

    async def _round(self) -> float:
        """Expire what is due, if anything is; returns the seconds to wait before the next
        round: until the next poll, or until the earliest free row falls due if sooner.

        It looks first, on the read engine: on SQLite a claim takes the database's write
        lock, which a round with nothing due has no need of.
        """
        if await self._seconds_to_due() <= 0:
            if await self.expire_due() == BATCH:
                return 0.0  # more may be due at once
            # A row due but not claimed was claimed by another process this moment.
            return max(MIN_PAUSE, min(self._poll_interval, await self._seconds_to_due()))
        return max(0.0, min(self._poll_interval, await self._seconds_to_due()))

    async def _seconds_to_due(self) -> float:
        now = self._clock()
        async with self._read_engine.connect() as connection:
            due = await next_due_at(connection, now=now)
        return self._poll_interval if due is None else (due - now).total_seconds()

    async def expire_due(self) -> int:
        """One round: claim the rows due now and settle each, or let it go to be tried again
        later. Returns how many rows it claimed."""
        now = self._clock()
        async with self._engine.begin() as connection:
            claimed = await claim_due(
                connection, now=now, until=now + CLAIM_LEASE, claimer=self.claimer, limit=BATCH
            )
        for due in claimed:
            if self._stopping.is_set():
                break  # the rest wait for their lease to run out, and another round
            await self.expire(due)
        return len(claimed)

    async def expire(self, due: DueOrder) -> str | None:
        """Send the cancel of one claimed row and record what came of it; returns the
        outcome, None when it failed (and is to be tried again)."""
        attempt = await cancel_expired(self._mediator, due, fate=self._fate)
        if attempt.outcome is not None:
            await self._record(due, attempt.outcome)
        elif attempt.error is not None:
            await self._retry_later(due, attempt.error)
        return attempt.outcome

    async def _record(self, due: DueOrder, outcome: str) -> None:
        async with self._engine.begin() as connection:
            await record_outcome(
                connection, due.order_id, claimer=self.claimer, outcome=outcome, at=self._clock()
            )
        logger.info(
            "pending order timer: order %s %s [%s]", due.order_id, outcome, due.correlation_id
        )

    async def _retry_later(self, due: DueOrder, error: BaseException) -> None:
        delay = retry_delay(due.attempts, first=self._poll_interval)
        async with self._engine.begin() as connection:
            await record_failure(
                connection,
                due.order_id,
                claimer=self.claimer,
                error=_described(error),
                retry_at=self._clock() + timedelta(seconds=delay),
            )
        logger.warning(
            "pending order timer: cancelling order %s failed (attempt %d, again in %.1f s): "
            "%s [%s]",
            due.order_id,
            due.attempts + 1,
            delay,
            _described(error),
            due.correlation_id,
        )

    async def _fate(self, due: DueOrder) -> OrderFate:
        async with self._log_engine.connect() as connection:
            return await order_fate(
                connection,
                due.order_id,
                cause=due.placed_event_id,
                cancel_type=OrderCancelled.__name__,
            )


class _Resting:
    """The timer where orders do not expire: starts and stops, and does nothing."""

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


def pending_order_timer(wiring: Wiring, mediator: Mediator) -> Worker:
    """The feature's worker: the timer when orders expire, else one that does nothing (rows
    left from a time they did are not cancelled once the setting is off)."""
    ttl = wiring.reacting.pending_order_ttl
    if ttl is None:
        return _Resting()
    if wiring.effects_engine is None or wiring.write_reads_engine is None:
        raise ConfigurationError("orders expire only where reactions keep their due times")
    return PendingOrderTimer(
        mediator,
        engine=wiring.effects_engine,
        log_engine=wiring.write_reads_engine,
        clock=wiring.clock,
        poll_interval=wiring.reacting.poll_interval,
        read_engine=wiring.read_engine,
    )
