"""The event tail: one per process, it follows the log behind the projector and fans each
event out to the local subscriptions that want it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from persistence.event_log import EventLog, StoredEvent

logger = logging.getLogger("orderdesk.event_tail")


@dataclass(frozen=True, slots=True)
class TailEvent:
    """A committed event with the entity as the read model showed it when the tail read it."""

    stored: StoredEvent
    view: object | None

    @property
    def position(self) -> int:
        return self.stored.position


ViewLoader = Callable[[AsyncConnection, Sequence[str]], Awaitable[Mapping[str, object]]]
"""Reads the read-model views of the given stream ids in one statement."""

Filter = Callable[[TailEvent], bool]


class SubscriberTooSlow(Exception):
    """A subscriber fell a whole queue behind; it is cut off and may resume from its cursor.

    `resume_after` is the position to pass as `after` to miss nothing.
    """

    def __init__(self, message: str, *, resume_after: int) -> None:
        super().__init__(message)
        self.resume_after = resume_after


class TailStopped(Exception):
    """The server is shutting down."""


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

    It follows the projector (`advance_to` is called when the read models have passed a
    position), so a delivered event's entity view already reflects the event.
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
    ) -> None:
        self._log = log
        self._log_engine = log_engine
        self._read_engine = read_engine
        self._views = dict(views)
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._position = 0
        self._target = 0
        self._subscribers: set[_Subscriber] = set()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def position(self) -> int:
        return self._position

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def start(self, position: int) -> None:
        """Deliver live events after `position` (what the read models have already reached)."""
        self._position = self._target = position
        self._task = asyncio.create_task(self._follow(), name="event-tail")

    async def stop(self) -> None:
        for subscriber in self._subscribers:
            subscriber.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def advance_to(self, position: int) -> None:
        if position > self._target:
            self._target = position
            self._wakeup.set()

    async def subscribe(
        self, matches: Filter, *, after: int | None = None
    ) -> AsyncIterator[TailEvent]:
        """Matching events after `after` (or from now on, if None), in order, each once.

        The subscriber is registered before the replay starts, so events that arrive
        while the log is being replayed wait in its queue; the replay stops at the
        position the tail had reached at registration, and live events start after it:
        no gap and no duplicate at the seam.
        """
        subscriber = _Subscriber(matches, self._queue_size)
        self._subscribers.add(subscriber)
        try:
            seam = self._position
            if after is not None and after < seam:
                async for event in self._replay(matches, after=after, up_to=seam):
                    yield event
            delivered = seam if after is None else max(after, seam)
            while (live := await subscriber.next()) is not None:
                if live.position > delivered:
                    yield live
        finally:
            self._subscribers.discard(subscriber)

    async def _replay(self, matches: Filter, *, after: int, up_to: int) -> AsyncIterator[TailEvent]:
        cursor = after
        while cursor < up_to:
            batch = await self._read(after=cursor, up_to=up_to)
            if not batch:
                return
            for event in batch:
                if matches(event):
                    yield event
            cursor = batch[-1].position

    async def _read(self, *, after: int, up_to: int) -> list[TailEvent]:
        async with self._log_engine.connect() as connection:
            events = await self._log.read(
                connection, after=after, up_to=up_to, limit=self._batch_size
            )
        if not events:
            return []
        views: dict[tuple[str, str], object] = {}
        async with self._read_engine.connect() as connection:
            for stream_type, load in self._views.items():
                ids = sorted({e.stream_id for e in events if e.stream_type == stream_type})
                if ids:
                    found = await load(connection, ids)
                    views.update(((stream_type, key), view) for key, view in found.items())
        return [TailEvent(e, views.get((e.stream_type, e.stream_id))) for e in events]

    async def _follow(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            try:
                while self._position < self._target:
                    if not self._subscribers:
                        # Nobody to deliver to: skip the reads. A subscriber that comes later
                        # and asks for these events replays them from the log (`subscribe`).
                        self._position = self._target
                        break
                    batch = await self._read(after=self._position, up_to=self._target)
                    if not batch:
                        break
                    for event in batch:
                        for subscriber in self._subscribers:
                            if subscriber.matches(event):
                                subscriber.offer(event)
                    self._position = batch[-1].position
                    # SQLite runs in the loop's thread: let requests in between batches.
                    await asyncio.sleep(0)
            except Exception:
                logger.exception("event tail could not read the log; retrying")
                await asyncio.sleep(0.5)
                self._wakeup.set()
