"""The event tail: one per process, it follows the log behind the projector and fans each
event out to the local subscriptions that want it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from persistence.event_log import EventLog
from persistence.projection_lag import HeadSightings
from persistence.tables import projection_checkpoints
from persistence.tail_events import (
    Filter,
    HeldBack,
    PositionNotReached,
    ReplayTooLong,
    SubscriberTooSlow,
    TailEvent,
    ViewLoader,
)

logger = logging.getLogger("orderdesk.event_tail")

HELD_REPLAY_RETRY = 0.5
"""Seconds before a replay held back by the stored checkpoints looks again."""


class _Subscriber:
    __slots__ = ("capacity", "closed", "error", "matches", "queue", "ready")

    def __init__(self, matches: Filter, capacity: int) -> None:
        self.matches = matches
        self.capacity = capacity
        self.queue: deque[TailEvent] = deque()
        self.ready = asyncio.Event()
        self.error: Exception | None = None
        self.closed = False

    def offer(self, event: TailEvent) -> None:
        if self.error is not None:
            return
        if len(self.queue) >= self.capacity:
            resume_after = self.queue[0].position - 1
            self.error = SubscriberTooSlow(
                f"the subscriber fell {self.capacity} events behind and was disconnected; "
                f'resume with after: "{resume_after}"',
                resume_after=resume_after,
            )
            self.queue.clear()
        else:
            self.queue.append(event)
        self.ready.set()

    def close(self) -> None:
        self.closed = True
        self.ready.set()

    async def next(self) -> TailEvent | None:
        while not self.queue:
            if self.error is not None:
                raise self.error
            if self.closed:
                return None
            self.ready.clear()
            await self.ready.wait()
        return self.queue.popleft()


class EventTail:
    """Reads each event from the log once per process, whatever the number of subscribers.

    It follows the projector (`advance_to` is called when the read models its views read
    have all passed a position, parked ones included), so a delivered event's entity view
    already reflects the event, and a parked read model holds every subscriber back until
    it runs again, rather than letting events through without their entity.

    `reads` names the projections the views read. Each batch is also checked against their
    checkpoints as stored, around the read of its views: another process's rebuild empties
    a read model before this process hears of it, and an event is never delivered (or
    skipped) without its entity's view.

    Replays (`subscribe(after=...)`) are bounded: one may start at most `max_replay_events`
    positions back (None: any); each reads `replay_batch_size` events at a time and lets
    the loop run between batches; and at most `replay_reads` of them read the log at once,
    so that many replays take turns instead of all holding connections and the loop.
    Measured with twenty replays of 5,000 events on one socket (SQLite): other requests
    waited 130-400 ms at the median (3.4 s at worst) with batches of 500, all reading at
    once, no pause; 50-130 ms with batches of 100 and a pause; 20-40 ms (under 0.7 s at
    worst) with, besides, two reading at a time.
    """

    def __init__(
        self,
        *,
        log: EventLog,
        log_engine: AsyncEngine,
        read_engine: AsyncEngine,
        views: Mapping[str, ViewLoader],
        queue_size: int = 1_000,
        batch_size: int = 500,
        max_replay_events: int | None = None,
        replay_batch_size: int = 100,
        replay_reads: int = 2,
        reads: Sequence[str] = (),
        fanned_out: Callable[[int], None] | None = None,
    ) -> None:
        self._log = log
        self._log_engine = log_engine
        self._read_engine = read_engine
        self._views = dict(views)
        self._reads = tuple(reads)
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._max_replay_events = max_replay_events
        self._replay_batch_size = replay_batch_size
        self._replay_reads = asyncio.Semaphore(replay_reads)
        self._position = 0
        self._bound = 0
        self._held_by: tuple[str, ...] = ()
        self._bound_moved = asyncio.Event()
        self._stopped = False
        self._subscribers: set[_Subscriber] = set()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._fanned_out = fanned_out
        """Told how many live events were handed to subscribers, once a batch (a metric)."""
        self._bounds = HeadSightings()

    @property
    def position(self) -> int:
        return self._position

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def lag(self) -> tuple[int, float]:
        """How far the live deliveries are behind the read models the tail follows:
        positions they have applied that the tail has not fanned out yet, and seconds since
        the first of them was applied (0, 0 when caught up)."""
        return self._bounds.behind(self._position)

    @property
    def held_back(self) -> HeldBack | None:
        """Why subscribers wait, if a projection the views read is parked."""
        if not self._held_by:
            return None
        return HeldBack(self._held_by, self._position)

    def start(self, position: int) -> None:
        """Deliver live events after `position` (what the read models have already reached)."""
        self._position = self._bound = position
        self._task = asyncio.create_task(self._follow(), name="event-tail")

    async def stop(self) -> None:
        self._stopped = True
        self._move_bound()
        for subscriber in self._subscribers:
            subscriber.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def advance_to(self, position: int, parked: Sequence[str] = ()) -> None:
        """The read models the views read have all applied `position`; `parked` are those
        of them that stopped (and hold everything after their position back).

        The bound may go down: a rebuild empties a read model and replays it. Nothing past
        it is delivered, live or replayed, until the rebuild has passed it again.
        """
        self._held_by = tuple(parked)
        self._bounds.heard(position)
        if position != self._bound:
            self._bound = position
            self._move_bound()
            if position > self._position:
                self._wakeup.set()

    def _move_bound(self) -> None:
        moved, self._bound_moved = self._bound_moved, asyncio.Event()
        moved.set()

    async def subscribe(
        self, matches: Filter, *, after: int | None = None
    ) -> AsyncIterator[TailEvent]:
        """Matching events after `after` (or from now on, if None), in order, each once.

        The subscriber is registered before the replay starts, so events that arrive
        while the log is being replayed wait in its queue; the replay stops at the
        position the tail had reached at registration, and live events start after it:
        no gap and no duplicate at the seam.

        Raises `ReplayTooLong` if `after` is too far back and `PositionNotReached` if the
        log has no such position, before the first read of the backlog.
        """
        subscriber = _Subscriber(matches, self._queue_size)
        self._subscribers.add(subscriber)
        try:
            seam = self._position
            if after is not None:
                await self._check_replay(after, seam)
            if after is not None and after < seam:
                async for event in self._replay(matches, after=after, up_to=seam):
                    yield event
            delivered = seam if after is None else max(after, seam)
            while (live := await subscriber.next()) is not None:
                if live.position > delivered:
                    yield live
        finally:
            self._subscribers.discard(subscriber)

    async def _check_replay(self, after: int, seam: int) -> None:
        behind = seam - after
        limit = self._max_replay_events
        if limit is not None and behind > limit:
            raise ReplayTooLong(
                f'after: "{after}" is {behind} log positions behind the newest event, and a '
                f"subscription replays at most {limit}. Re-read the current state with a "
                "query, then subscribe without `after` (or with a recent cursor).",
                max_replay_events=limit,
                behind=behind,
            )
        if behind < 0:
            # Ahead of this process's tail is not always ahead of the log: another process
            # may have delivered an event this one has not followed yet. Ask the log.
            async with self._log_engine.connect() as connection:
                head = await self._log.head(connection)
            if after > head:
                raise PositionNotReached(
                    f'after: "{after}" is no position of an event: the newest is "{head}"'
                )

    async def _replay(self, matches: Filter, *, after: int, up_to: int) -> AsyncIterator[TailEvent]:
        cursor = after
        while cursor < up_to:
            if cursor >= self._bound:
                # A rebuild is replaying the read models: their rows past the bound are not
                # there yet, and an event's view must be.
                moved = self._bound_moved
                if self._stopped:
                    return
                await moved.wait()
                continue
            # Only the read holds a turn: a subscriber slow to take its events must not keep
            # the others from theirs.
            async with self._replay_reads:
                batch = await self._read(
                    after=cursor, up_to=min(up_to, self._bound), limit=self._replay_batch_size
                )
            if not batch:
                # Held back by what the read models store (a rebuild elsewhere): look again
                # when the bound moves, or after a while.
                moved = self._bound_moved
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(HELD_REPLAY_RETRY):
                        await moved.wait()
                if self._stopped:
                    return
                continue
            for event in batch:
                if matches(event):
                    yield event
            cursor = batch[-1].position
            # SQLite reads run in the loop's thread, and a subscriber takes a batch without
            # waiting: give the other requests their turn between batches.
            await asyncio.sleep(0)

    async def _read(self, *, after: int, up_to: int, limit: int) -> list[TailEvent]:
        """Events after `after` with their views, as far as the read models stored have
        them: possibly fewer than asked, or none, while another process rebuilds one
        (this process learns of that only at its projector's next look)."""
        async with self._log_engine.connect() as connection:
            events = await self._log.read(connection, after=after, up_to=up_to, limit=limit)
        if not events:
            return []
        views: dict[tuple[str, str], object] = {}
        async with self._read_engine.connect() as connection:
            applied, rebuilds = await self._stored(connection)
            events = [e for e in events if e.position <= applied]
            for stream_type, load in self._views.items():
                ids = sorted({e.stream_id for e in events if e.stream_type == stream_type})
                if ids:
                    found = await load(connection, ids)
                    views.update(((stream_type, key), view) for key, view in found.items())
            # A rebuild that began meanwhile may have emptied what was read: read again.
            if events and (await self._stored(connection))[1] != rebuilds:
                return []
        return [TailEvent(e, views.get((e.stream_type, e.stream_id))) for e in events]

    async def _stored(self, connection: AsyncConnection) -> tuple[int, int]:
        """What the views' read models have all applied, and their rebuild counts, as stored."""
        if not self._reads:
            return self._bound, 0
        rows = (
            await connection.execute(
                select(projection_checkpoints.c.position, projection_checkpoints.c.rebuilds).where(
                    projection_checkpoints.c.name.in_(self._reads)
                )
            )
        ).all()
        if len(rows) < len(self._reads):
            return 0, 0
        return min(int(row.position) for row in rows), sum(int(row.rebuilds) for row in rows)

    async def _follow(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            try:
                while self._position < self._bound:
                    if not self._subscribers:
                        # Nobody to deliver to: skip the reads. A subscriber that comes later
                        # and asks for these events replays them from the log (`subscribe`).
                        self._position = self._bound
                        self._bounds.forget_through(self._position)
                        break
                    batch = await self._read(
                        after=self._position, up_to=self._bound, limit=self._batch_size
                    )
                    if not batch:
                        break
                    offered = 0
                    for event in batch:
                        for subscriber in self._subscribers:
                            if subscriber.matches(event):
                                subscriber.offer(event)
                                offered += 1
                    self._position = batch[-1].position
                    if offered and self._fanned_out is not None:
                        self._fanned_out(offered)
                    self._bounds.forget_through(self._position)
                    # SQLite runs in the loop's thread: let requests in between batches.
                    await asyncio.sleep(0)
            except Exception:
                logger.exception("event tail could not read the log; retrying")
                await asyncio.sleep(0.5)
                self._wakeup.set()
