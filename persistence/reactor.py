"""The reactor: hands each committed event to the reaction handlers subscribed to its type,
at least once, each handler at its own pace.

It follows the event log like the projector, and shares the projector's machinery: each
handler has a checkpoint row in `projection_checkpoints` (named `reaction:<handler>`), with
its parked error and its lease (persistence/projection_leases.py), so that of several
processes on one database one delivers to a handler at a time and the command line sees
what every process does. Unlike a projection, a handler does its work outside the
checkpoint's transaction (it sends email, calls other systems, sends commands), so the
checkpoint moves after the work: a crash in between delivers the event again, and a
handler keys what it does by its name and the event's id (handlers/reactions.py).

A handler that fails is retried with backoff while the others go on; after
`max_attempts` failures at one event it is parked until `orderdesk reactions retry NAME`.
One that is slow (a mail server taking its time) goes on alone past `PATIENCE`, and the
others carry on with the events after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from opentelemetry.trace import Tracer
from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.checkpoints import (
    checkpoint_rows,
    ensure_checkpoint_rows,
)
from persistence.event_log import EventLog, StoredEvent
from persistence.projection_leases import Leases
from persistence.projection_states import ProjectionStates
from persistence.reaction_checkpoints import ROW_PREFIX, ReactionCheckpoints, ReactionStatus
from persistence.reaction_delivery import Deliver, ObservedDelivery
from persistence.reaction_failures import ReactionFailures
from persistence.read_model_changes import ChangeNotices

logger = logging.getLogger("orderdesk.reactor")

RELEASE_WITHIN = 5.0
"""Seconds stopping may spend handing the leases back; past it, they expire instead."""

PATIENCE = 1.0
"""Seconds a round waits for its slowest handler. Past it, that one goes on alone with its
batch (a mail server that takes its time, say) and the others go on without it."""
STOP_WITHIN = PATIENCE + 1.0
"""Seconds stopping waits for the round under way to record what it delivered."""


@dataclass(frozen=True, slots=True)
class _Run:
    """How far one handler got with a batch, and the event it failed at, if it did."""

    reached: int
    stuck: tuple[StoredEvent, BaseException] | None = None


class Reactor:
    """Follows the event log for the reaction handlers; see the module's docstring."""

    def __init__(
        self,
        *,
        log: EventLog,
        log_engine: AsyncEngine,
        engine: AsyncEngine,
        checkpoint_engine: AsyncEngine | None = None,
        takes: Mapping[str, frozenset[str]],
        deliver: Deliver,
        poll_interval: float = 1.0,
        batch_size: int = 100,
        max_attempts: int = 5,
        retry_delay: float = 0.5,
        max_retry_delay: float = 300.0,
        lease_timeout: float = 3.0,
        tracer: Tracer | None = None,
        delivered: Callable[[str, float], None] | None = None,
        failed: Callable[[str], None] | None = None,
        up_to: Callable[[], int] | None = None,
    ) -> None:
        """`takes` names each handler and the event types it is subscribed to; `deliver`
        publishes an event to some of them. `delivered` is told each handler's successful
        delivery with the seconds since the event was committed, `failed` each failure.
        `up_to` is the last position that may be delivered yet (the read models' mark, so
        that a handler reading them finds its event applied); None, the log's head."""
        self._up_to = up_to
        self._log = log
        self._log_engine = log_engine
        self._engine = engine
        self._takes = dict(takes)
        self.checkpoints = ReactionCheckpoints(
            takes=self._takes,
            engine=engine,
            checkpoint_engine=checkpoint_engine or engine,
            log=log,
            log_engine=log_engine,
        )
        self._rows = self.checkpoints.rows
        self._deliver = ObservedDelivery(deliver, tracer, delivered, failed)
        self._poll_interval = poll_interval
        self._batch_size = batch_size
        self._lease_timeout = lease_timeout
        self._leases = Leases(timeout=lease_timeout)
        self._states = ProjectionStates(
            self._rows.values(),
            leases=self._leases,
            notices=ChangeNotices(None, log=log, log_engine=log_engine, batch_size=batch_size),
        )
        self._look_soon = False
        self._stopping = False
        self._head = 0
        self._wakeup = asyncio.Event()
        self._settling = asyncio.Lock()
        self._failures = ReactionFailures(
            rows=self._rows,
            states=self._states,
            leases=self._leases,
            engine=engine,
            settling=self._settling,
            max_attempts=max_attempts,
            retry_delay=retry_delay,
            max_retry_delay=max_retry_delay,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._running: dict[str, asyncio.Task[_Run]] = {}
        """Handlers still busy with a batch past a round's patience, going on alone."""

    @property
    def takes(self) -> Mapping[str, frozenset[str]]:
        """Each handler's name and the event types it is subscribed to."""
        return self._takes

    async def start(self) -> None:
        """Read (or create) each handler's checkpoint, then follow the log.

        A handler seen for the first time starts at the log's head: a handler added to a
        running shop reacts to what happens from now on, not to its whole history.
        """
        if not self._takes:
            return
        async with self._log_engine.connect() as connection:
            self._head = await self._log.head(connection)
        async with self._engine.begin() as connection:
            rows = await ensure_checkpoint_rows(connection, self._rows.values(), at=self._head)
        self._states.loaded(rows)
        await self._look_around()
        self._wakeup.set()  # the first round now: what was committed while it was away
        self._tasks = [
            asyncio.create_task(self._follow(), name="reactor"),
            asyncio.create_task(self._beat(), name="reactor leases"),
        ]

    async def stop(self) -> None:
        """Finish the round under way, so that what was delivered is recorded and not
        delivered again by the next leader (within STOP_WITHIN; past it, it is cut off, and
        what it delivered since its last checkpoint is delivered again); then hand back the
        leases."""
        self._stopping = True
        self._wakeup.set()
        if self._tasks:
            await asyncio.wait(self._tasks[:1], timeout=STOP_WITHIN)
        tasks = [*self._tasks, *self._running.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self._running = {}
        if self._leases.held:
            try:
                async with asyncio.timeout(RELEASE_WITHIN), self._engine.begin() as connection:
                    await self._leases.release(connection)
            except Exception:
                logger.warning("could not hand back the reaction leases", exc_info=True)

    def wake(self, position: int | None = None) -> None:
        """New events may be in the log (up to `position`, if known): look now."""
        if position is not None:
            self._head = max(self._head, position)
        self._wakeup.set()

    def status(self) -> list[ReactionStatus]:
        """What this process knows, as of its last look at the checkpoints."""
        now = time.monotonic()
        statuses = []
        for name, row in self._rows.items():
            retry_at = self._failures.retry_at.get(name)
            statuses.append(
                ReactionStatus(
                    name,
                    self._states.checkpoints.get(row, 0),
                    self._states.failures.get(row, 0),
                    self._states.parked.get(row),
                    self._leases.leader_of(row),
                    None if retry_at is None else max(0.0, retry_at - now),
                )
            )
        return statuses

    def lag(self) -> list[tuple[str, int]]:
        """Each handler's distance, in positions, from the log's head as this process knows it."""
        return [
            (name, max(0, self._head - self._states.checkpoints.get(row, 0)))
            for name, row in self._rows.items()
        ]

    async def stored_status(self) -> list[ReactionStatus]:
        """See `ReactionCheckpoints.stored_status`."""
        return await self.checkpoints.stored_status()

    async def retry(self, names: Iterable[str] | None = None) -> list[str]:
        """Clear the parked error of the named handlers (every parked one when None): their
        leader, in whichever process, delivers to them again within a poll interval.
        Returns the names that were parked."""
        parked = await self.checkpoints.retry(names)
        self._states.retried(self._rows[name] for name in parked)
        for name in parked:
            self._failures.forget(name)
        self.wake()
        return parked

    async def skip(self, name: str) -> StoredEvent | None:
        """See `ReactionCheckpoints.skip`; its leader goes on within a poll interval."""
        skipped = await self.checkpoints.skip(name)
        self.wake()
        return skipped

    async def catch_up(self) -> None:
        """Deliver everything in the log to the handlers this process leads that are not
        waiting out a retry; returns when they have no more to do (tests, benchmarks)."""
        await self._look_around()
        await self._catch_up()

    async def _follow(self) -> None:
        next_look = time.monotonic() + self._poll_interval
        while not self._stopping:
            wait = self._poll_interval
            retry = self._failures.next_retry(self._runnable)
            if retry is not None:
                wait = max(0.0, min(wait, retry - time.monotonic()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wakeup.wait()
            self._wakeup.clear()
            if self._stopping:
                return
            try:
                if self._look_soon or time.monotonic() >= next_look:
                    self._look_soon = False
                    next_look = time.monotonic() + self._poll_interval
                    await self._look_around()
                await self._catch_up()
            except Exception:
                # The database is away; the next round retries from the checkpoints.
                logger.exception("reactor round failed; retrying")

    async def _beat(self) -> None:
        """Keep the leases held alive while a slow delivery runs: each batch's advance is a
        beat too, but a handler waiting on a slow server would otherwise look dead."""
        while True:
            await asyncio.sleep(self._lease_timeout / 3)
            held = sorted(self._leases.held)
            if not held:
                continue
            try:
                async with self._settling, self._engine.begin() as connection:
                    kept = await self._leases.renew(connection, held)
                if not kept:
                    # Some lease was taken over: find out which now, before delivering more.
                    self._look_soon = True
                    self._wakeup.set()
            except Exception:
                logger.warning("could not renew the reaction leases", exc_info=True)

    async def _look_around(self) -> None:
        """Read every checkpoint row, renew the leases held, take over those free or expired."""
        async with self._settling, self._engine.begin() as connection:
            self._states.take(await checkpoint_rows(connection))
            for row in sorted(self._rows.values()):
                await self._leases.settle(connection, row)
        # Retried elsewhere (the command line): its next attempt is now.
        for row in self._states.resumed:
            self._failures.forget(row.removeprefix(ROW_PREFIX))
        self._states.resumed.clear()

    def _runnable(self, name: str) -> bool:
        return self._leases.holds(self._rows[name]) and name not in self._running

    def _ready(self) -> list[str]:
        now = time.monotonic()
        return [
            name
            for name, row in self._rows.items()
            if self._runnable(name)
            and row not in self._states.parked
            and not self._failures.waiting(name, now)
        ]

    async def _catch_up(self) -> None:
        while True:
            await self._record(self._finished_alone())
            if self._stopping:
                return
            ready = self._ready()
            if not ready:
                return
            checkpoints = self._states.checkpoints
            after = min(checkpoints[self._rows[name]] for name in ready)
            up_to = None if self._up_to is None else self._up_to()
            if up_to is not None and up_to <= after:
                return
            async with self._log_engine.connect() as connection:
                events = await self._log.read(
                    connection, after=after, up_to=up_to, limit=self._batch_size
                )
            if not events:
                return
            self._head = max(self._head, events[-1].position)
            finished: dict[str, _Run] = {}
            started: dict[str, asyncio.Task[_Run]] = {}
            for name in ready:
                # Its retry, if it was waiting for one, is this round: no wait is left.
                self._failures.forget(name)
                checkpoint = checkpoints[self._rows[name]]
                todo = [event for event in events if event.position > checkpoint]
                if not any(event.event_type in self._takes[name] for event in todo):
                    # Nothing for it in this batch: it has only to move on.
                    finished[name] = _Run(todo[-1].position if todo else checkpoint)
                    continue
                started[name] = asyncio.create_task(self._run(name, checkpoint, todo))
            if started:
                self._running.update(started)
                await asyncio.wait(started.values(), timeout=PATIENCE)
                for name, task in started.items():
                    if task.done():
                        del self._running[name]
                        finished[name] = task.result()
                    else:
                        # It goes on alone; the others go on without it, and the next round
                        # takes in what it did once it is done.
                        task.add_done_callback(lambda _task: self._wakeup.set())
            await self._record(finished)
            # SQLite runs in the loop's thread: let requests in between batches.
            await asyncio.sleep(0)

    async def _run(self, name: str, checkpoint: int, events: list[StoredEvent]) -> _Run:
        """Deliver `events` to one handler, in order, up to the first it fails at."""
        reached = checkpoint
        row = self._rows[name]
        for event in events:
            if self._stopping or not self._leases.holds(row):
                # Another process leads it now (this one froze past the lease): what is
                # left of the batch is the new leader's to deliver.
                break
            if event.event_type in self._takes[name]:
                failures = await self._deliver(event, [name])
                if failures:
                    return _Run(reached, (event, failures[name]))
            reached = event.position
        return _Run(reached)

    def _finished_alone(self) -> dict[str, _Run]:
        """The handlers that went on alone past a round's patience and are done now."""
        finished = {}
        for name, task in list(self._running.items()):
            if task.done():
                del self._running[name]
                if not task.cancelled():
                    finished[name] = task.result()
        return finished

    async def _record(self, runs: Mapping[str, _Run]) -> None:
        if not runs:
            return
        await self.checkpoints.advance(
            {name: run.reached for name, run in runs.items()}, self._states, self._leases
        )
        for name, run in runs.items():
            if run.stuck is None:
                self._failures.forget(name)
            else:
                await self._failures.note(name, *run.stuck)
