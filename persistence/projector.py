"""The projector: applies the event log, in order, to the read models."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, Table, delete
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from persistence.checkpoints import (
    ADVANCE,
    LOCK,
    checkpoint_rows,
    clear_parked,
    count_rebuilt,
    mark_parked,
    new_checkpoint,
    reset_for_rebuild,
)
from persistence.event_log import EventLog, StoredEvent
from persistence.projection_leases import Leases
from persistence.read_model_changes import ChangeNotices, ChangesNotTold, ReadModelChanges

logger = logging.getLogger("orderdesk.projector")

Apply = Callable[[AsyncConnection, StoredEvent], Awaitable[None]]
Touches = Callable[[StoredEvent], Iterable[str] | None]


@dataclass(frozen=True, slots=True)
class Projection:
    """A read model: `apply` updates its tables for one event, inside the projector's transaction.

    It is called for every event in the log, in order, and ignores those it has no use for.
    """

    name: str
    apply: Apply
    tables: tuple[Table, ...] = ()
    """The tables this projection alone writes; a rebuild empties them and replays the log."""
    touches: Touches | None = None
    """The ids of the rows `apply` changes for an event (none for an event it ignores), for
    the query cache; None, or no function, means it cannot say: every row may change."""


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    name: str
    position: int
    failures: int
    parked_error: str | None
    leader: str | None = None
    """The process that applies it (host:pid:token), if one does."""


class ProjectionTimeout(TimeoutError):
    """The read models did not reach a position in time; the write itself is committed."""


class UnknownProjection(LookupError):
    """A projection name that is not one of the projector's."""


RELEASE_WITHIN = 5.0
"""Seconds stopping may spend handing the leases back; past it, they expire instead."""
CHASE_INTERVAL = 0.005
"""Seconds between looks at a checkpoint another process is about to move: a mutation
here waits on it (read-your-writes), so this is the latency a follower adds to a write."""
CHASE_FOR = 2.0
"""How long a follower keeps looking that often after hearing of a new event; past it, a
leader that has not moved is looked for at the poll interval (and its lease timed out)."""


class _CheckpointMoved(Exception):
    """Another process advanced the projection first, or took its lease: this batch must
    not be applied twice."""


Progress = Callable[[int, tuple[str, ...]], None]
"""Told (position, parked names) of the projections it watches: see `Projector.watch`."""


@dataclass(slots=True)
class _Watcher:
    names: tuple[str, ...]
    listener: Progress
    last: tuple[int, tuple[str, ...]] | None = None


class Projector:
    """Follows the event log and keeps each projection's checkpoint with its read model.

    A projection's rows and its checkpoint change in one transaction, so after a crash it
    resumes exactly where its last commit left it, and a replay changes nothing. Of several
    processes on one database, the one that holds a projection's lease applies it
    (persistence/projection_leases.py) and the others follow its checkpoint. The checkpoint
    advances only from the position the batch started at, and only for the lease's holder
    (compare and set), so no batch is applied twice whatever the timing.

    A projection's state - its position, whether it is parked and why, which process leads
    it - is its checkpoint row's: every process and the command line see the same, and a
    running server notices a rebuild or a retry made elsewhere within one poll interval.
    """

    def __init__(
        self,
        *,
        log: EventLog,
        log_engine: AsyncEngine,
        read_model_engine: AsyncEngine,
        projections: Sequence[Projection],
        checkpoint_engine: AsyncEngine | None = None,
        poll_interval: float = 1.0,
        batch_size: int = 500,
        max_attempts: int = 5,
        retry_delay: float = 0.05,
        lease_timeout: float = 3.0,
        changes: ReadModelChanges | None = None,
        leases: Leases | None = None,
    ) -> None:
        self._log = log
        self._log_engine = log_engine
        self._engine = read_model_engine
        # Reads of the checkpoints alone (a follower looks often): not through the write
        # engine, whose every transaction takes SQLite's write lock.
        self._checkpoint_engine = checkpoint_engine or read_model_engine
        self._projections = list(projections)
        self._poll_interval = poll_interval
        self._batch_size = batch_size
        self._max_attempts = max_attempts
        self._retry_delay = retry_delay
        self._leases = leases or Leases(timeout=lease_timeout)
        self._checkpoints: dict[str, int] = {}
        self._failures: dict[str, int] = {}
        self._parked: dict[str, str] = {}
        self._reached = 0
        self._known_head = 0
        self._chase_until = 0.0
        self._look = False
        self._advanced = asyncio.Condition()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._watchers: list[_Watcher] = []
        self._lock = asyncio.Lock()
        self._notices = ChangeNotices(
            changes, log=log, log_engine=log_engine, batch_size=batch_size
        )
        self._resumed: set[str] = set()
        self._rebuilds: dict[str, int] = {}

    @property
    def position(self) -> int:
        """The position every running projection has reached."""
        return self._reached

    def applied_by(self, names: Iterable[str]) -> int:
        """The position every one of `names` has applied, parked ones included."""
        return min((self._checkpoints.get(name, 0) for name in names), default=0)

    def watch(self, names: Iterable[str], listener: Progress) -> None:
        """Call `listener(position, parked)` whenever what `names` have all applied, or
        which of them are parked, changes; at once with how things stand now.

        Unlike `position`, parked projections count: what reads their rows (the event
        tail) must wait for them, where a mutation must not.
        """
        watcher = _Watcher(tuple(names), listener)
        self._watchers.append(watcher)
        self._tell_watcher(watcher)

    def wake(self, position: int | None = None) -> None:
        """New events may be in the log (up to `position`, if known): look now instead of
        at the next poll, and, for projections another process applies, keep looking at
        its checkpoint until it has passed `position`."""
        if position is None:
            self._look = True
        elif position > self._known_head:
            self._known_head = position
            self._chase_until = time.monotonic() + CHASE_FOR
        self._wakeup.set()

    async def start(self) -> None:
        await self._load_checkpoints()
        # A shared cache (Redis) may hold entries older than writes that an earlier run, or
        # a process that died, applied without telling it: start from a clean slate. If
        # the cache cannot be reached now, catch_up tries again before the mark moves.
        self._notices.stale(p.name for p in self._projections)
        try:
            await self.catch_up()
        except ChangesNotTold:
            # The read models are applied; the mark waits for the cache (see _follow).
            logger.exception("the query cache could not be told of changes; retrying")
        self._task = asyncio.create_task(self._follow(), name="projector")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._leases.held:
            # Handed back, another process takes over at its next poll instead of after
            # the lease's timeout.
            try:
                async with asyncio.timeout(RELEASE_WITHIN), self._engine.begin() as c:
                    await self._leases.release(c)
            except Exception:
                logger.warning("could not hand back the projection leases", exc_info=True)

    # The timeout is ours to own: its error names the positions, which asyncio.timeout cannot.
    async def wait_for(self, position: int, timeout: float) -> None:  # noqa: ASYNC109
        """Return once every running projection has applied the event at `position`.

        Parked projections are not waited for: a broken read model must not hold up
        every write. A mutation whose own read model is parked finds its row missing and
        says so (READ_MODEL_LAGGING); the write itself is committed.
        """
        if self._reached >= position:
            return
        self.wake(position)
        try:
            async with asyncio.timeout(timeout), self._advanced:
                await self._advanced.wait_for(lambda: self._reached >= position)
        except TimeoutError:
            raise ProjectionTimeout(
                f"the read models have reached position {self._reached}, not {position}, "
                f"within {timeout} s"
            ) from None

    def status(self) -> list[ProjectionStatus]:
        """What this process knows, as of its last look at the checkpoints (each poll)."""
        return [
            ProjectionStatus(
                p.name,
                self._checkpoints.get(p.name, 0),
                self._failures.get(p.name, 0),
                self._parked.get(p.name),
                self._leases.leader_of(p.name),
            )
            for p in self._projections
        ]

    async def catch_up(self) -> None:
        """Take the leases that are free, then apply everything in the log for the
        projections this process leads; returns when they have no more to do."""
        await self._look_around()
        await self._catch_up()

    async def _catch_up(self) -> None:
        """A round: apply what this process leads, and look at the checkpoints of what
        another leads if they have events to catch up on."""
        async with self._lock:
            await self._notices.forget_stale()
            # SQLite runs in the loop's thread: sleep(0) lets requests in between batches.
            while await self._advance_once():  # noqa: ASYNC110 - a yield, not a wait
                await asyncio.sleep(0)
            if (self._look or self._reached < self._known_head) and self._follows_any():
                self._look = False
                async with self._checkpoint_engine.connect() as connection:
                    self._take(await checkpoint_rows(connection))
                if any(self._leases.claimable(p.name) for p in self._projections):
                    # Its leader let go, or died on this host: take over now, not at the
                    # next poll, as a write here is waiting.
                    await self._settle_leases()
                    while await self._advance_once():  # noqa: ASYNC110 - a yield, not a wait
                        await asyncio.sleep(0)
                await self._publish_progress(self._reached, [])

    async def _look_around(self) -> None:
        """Once a poll: read every checkpoint row (positions, parked errors, rebuild counts,
        leaders), renew the leases held and take over those free or expired."""
        async with self._lock:
            await self._settle_leases()
            await self._publish_progress(self._reached, [])

    async def _settle_leases(self) -> None:
        async with self._engine.begin() as connection:
            self._take(await checkpoint_rows(connection))
            # By name, as a rebuild and a release lock them: no two lock in other orders.
            for name in sorted(p.name for p in self._projections):
                await self._leases.settle(connection, name)

    def _take(self, rows: dict[str, Row[Any]]) -> None:
        """Make what the checkpoint rows say this process's view."""
        for projection in self._projections:
            name = projection.name
            row = rows.get(name)
            if row is None:
                continue
            self._checkpoints[name] = int(row.position)
            self._leases.observe(name, row.leader, int(row.beat))
            if row.parked_error is not None:
                self._parked[name] = row.parked_error
            elif self._parked.pop(name, None) is not None:
                # Retried or rebuilt, here or by another process: a fresh count of attempts.
                self._failures.pop(name, None)
                self._resumed.add(name)
            # A rebuild elsewhere counts this up as it starts and as it ends: what was read
            # (and cached) meanwhile is stale, though positions may end where they were.
            rebuilds = int(row.rebuilds)
            if self._notices.wanted and self._rebuilds.get(name, rebuilds) != rebuilds:
                self._notices.stale([name])
            self._rebuilds[name] = rebuilds

    def _follows_any(self) -> bool:
        return any(
            p.name not in self._parked and not self._leases.holds(p.name) for p in self._projections
        )

    def _chasing(self) -> bool:
        return (
            self._reached < self._known_head
            and time.monotonic() < self._chase_until
            and self._follows_any()
        )

    async def stored_status(self) -> list[ProjectionStatus]:
        """Each projection's checkpoint, parked error and leader as the read database holds
        them.

        Reads only, applies nothing: this is what `orderdesk projections status` shows,
        whichever process parked a projection. A projection without a checkpoint row has
        never run and stands at 0.
        """
        async with self._checkpoint_engine.connect() as connection:
            rows = await checkpoint_rows(connection)
        statuses = []
        for projection in self._projections:
            row = rows.get(projection.name)
            if row is None:
                statuses.append(ProjectionStatus(projection.name, 0, 0, None))
            else:
                statuses.append(
                    ProjectionStatus(
                        projection.name, int(row.position), 0, row.parked_error, row.leader
                    )
                )
        return statuses

    async def log_head(self) -> int:
        """The highest position in the event log, to compare checkpoints with."""
        async with self._log_engine.connect() as connection:
            return await self._log.head(connection)

    async def retry(self, names: Iterable[str] | None = None) -> list[str]:
        """Clear the parked error of the named projections (every parked one when None):
        their leader, in whichever process, tries them again within a poll interval.
        Returns the names that were parked."""
        targets = [p.name for p in self._select(names)]
        async with self._engine.begin() as connection:
            parked = await clear_parked(connection, targets)
        for name in parked:
            if self._parked.pop(name, None) is not None:
                self._resumed.add(name)
            self._failures.pop(name, None)
        self.wake()
        return parked

    async def rebuild(self, names: Iterable[str] | None = None) -> None:
        """Replay the named projections (all when None) from the start of the log.

        One transaction takes their leases, sets their checkpoints to 0, clears their
        parked errors and empties their tables; then the log is applied again, a batch per
        transaction, as at any catch-up. What a running server sees meanwhile: its readers
        find the rebuilt read models empty, then filling up batch by batch until they
        reach the head (lists are short, an order may read as null) - rebuild when that is
        acceptable, or with the servers stopped. Its subscribers are held back until the
        rebuild has passed what they were delivered. Its projector follows the rebuild's
        checkpoint, and takes the lease back once the rebuild is done (`stop` hands it
        back). No event is applied twice, and nothing is lost.
        """
        targets = self._select(names)
        async with self._lock:
            if not self._checkpoints:  # not started: the command line rebuilds this way
                await self._load_checkpoints()
            async with self._engine.begin() as connection:
                # Checkpoints first: another process applying one of these holds its
                # checkpoint's lock before its rows, and so must the rebuild; and by name,
                # as leases are settled and released (no deadlock either way).
                for projection in sorted(targets, key=lambda p: p.name):
                    await reset_for_rebuild(connection, projection.name, leader=self._leases.me)
                for projection in targets:
                    # Children before parents, should a projection's tables refer to each other.
                    for table in reversed(projection.tables):
                        await connection.execute(delete(table))
            for projection in targets:
                self._checkpoints[projection.name] = 0
                self._failures.pop(projection.name, None)
                self._parked.pop(projection.name, None)
                self._leases.forced(projection.name)
            rebuilt = [projection.name for projection in targets]
            await self._notices.rebuilt(rebuilt)
            # Only the rebuilt ones: the others follow the log as they did, at their pace.
            while await self._advance_once(targets):
                pass
            # What was read (and cached) while the tables filled up is stale now, here and
            # in other processes (which notice the count, `_take`).
            async with self._engine.begin() as connection:
                await count_rebuilt(connection, rebuilt)
                self._take(await checkpoint_rows(connection))
            await self._notices.rebuilt(rebuilt)

    def _select(self, names: Iterable[str] | None) -> list[Projection]:
        if names is None:
            return list(self._projections)
        known = {p.name: p for p in self._projections}
        wanted = list(dict.fromkeys(names))
        unknown = [name for name in wanted if name not in known]
        if unknown:
            raise UnknownProjection(
                f"no projection is named {', '.join(unknown)}; there are {', '.join(known)}"
            )
        return [known[name] for name in wanted]

    async def _follow(self) -> None:
        next_look = time.monotonic() + self._poll_interval
        while True:
            wait = CHASE_INTERVAL if self._chasing() else self._poll_interval
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wakeup.wait()
            self._wakeup.clear()
            try:
                # By the clock, not only when idle: steady writes wake this every time.
                if time.monotonic() >= next_look:
                    next_look = time.monotonic() + self._poll_interval
                    await self._look_around()
                await self._catch_up()
            except Exception:
                # The database or the query cache is away; the next round retries, and the
                # read-your-writes mark stays where it is meanwhile.
                logger.exception("projector round failed; retrying")

    async def _load_checkpoints(self) -> None:
        """Read (or create) each checkpoint. A projection parked stays parked, whichever
        process parked it, until `retry` or `rebuild` (`orderdesk projections ...`)."""
        async with self._engine.begin() as connection:
            rows = await checkpoint_rows(connection)
            missing = {p.name for p in self._projections} - set(rows)
            if missing:
                # Every worker of a fresh database gets here at once: the rows one inserts
                # are the others' to skip, and what counts is what is stored afterwards.
                for name in sorted(missing):
                    await connection.execute(new_checkpoint(connection, name))
                rows = await checkpoint_rows(connection)
        self._rebuilds = {name: int(row.rebuilds) for name, row in rows.items()}
        for projection in self._projections:
            self._checkpoints.setdefault(projection.name, 0)
        self._take(rows)
        self._reached = self._running_minimum()
        # What was applied before is made stale as a whole at start (`start`).
        self._notices.told_through = max(self._notices.told_through, self._reached)

    def _running_minimum(self) -> int:
        running = [
            self._checkpoints[p.name] for p in self._projections if p.name not in self._parked
        ]
        return min(running, default=max(self._checkpoints.values(), default=0))

    async def _advance_once(self, only: Sequence[Projection] | None = None) -> bool:
        candidates = self._projections if only is None else only
        leading = [
            p for p in candidates if p.name not in self._parked and self._leases.holds(p.name)
        ]
        if not leading:
            return False
        start = min(self._checkpoints[p.name] for p in leading)
        async with self._log_engine.connect() as connection:
            events = await self._log.read(connection, after=start, limit=self._batch_size)
        for projection in leading:
            await self._apply(projection, events)
        # Even with no new events: a mark held back by a failed `changes` moves on now.
        await self._publish_progress(start, events)
        return bool(events)

    async def _apply(self, projection: Projection, events: list[StoredEvent]) -> None:
        name = projection.name
        checkpoint = self._checkpoints[name]
        todo = [event for event in events if event.position > checkpoint]
        if not todo:
            return
        me = self._leases.me
        try:
            async with self._engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    # The checkpoint's row lock before any read-model row: whoever else
                    # touches this projection (a rebuild, a holder that lost its lease and
                    # has not noticed) waits here, instead of locking rows in another order.
                    # (SQLite's writers take turns anyway.)
                    locked = (await connection.execute(LOCK, {"b_name": name})).one()
                    if (int(locked.position), locked.leader) != (checkpoint, me):
                        raise _CheckpointMoved
                for event in todo:
                    await projection.apply(connection, event)
                moved = await connection.execute(
                    ADVANCE,
                    {
                        "b_name": name,
                        "b_from": checkpoint,
                        "b_leader": me,
                        "position": todo[-1].position,
                    },
                )
                if moved.rowcount != 1:
                    raise _CheckpointMoved
        except _CheckpointMoved:
            await self._reload_checkpoint(name)
            return
        except Exception as error:
            # A rebuild may have taken the lease and emptied the tables under this batch:
            # a lost race, not a broken projection.
            await self._reload_checkpoint(name)
            if self._checkpoints[name] != checkpoint or not self._leases.holds(name):
                return
            await self._failed(projection, todo[0], error)
            return
        self._checkpoints[name] = todo[-1].position
        self._failures.pop(name, None)

    async def _failed(self, projection: Projection, event: StoredEvent, error: Exception) -> None:
        """Retry with backoff, then park: a broken projection must not stop the others or writes."""
        failures = self._failures.get(projection.name, 0) + 1
        self._failures[projection.name] = failures
        logger.error(
            "projection %s failed at position %d (%s), attempt %d of %d",
            projection.name,
            event.position,
            event.event_type,
            failures,
            self._max_attempts,
            exc_info=error,
        )
        if failures >= self._max_attempts:
            reason = f"{type(error).__name__}: {error} at position {event.position}"
            self._parked[projection.name] = reason
            logger.error(
                "projection %s is parked until `orderdesk projections retry %s` or a rebuild",
                projection.name,
                projection.name,
            )
            await self._store_parked(projection.name, reason, at=self._checkpoints[projection.name])
            return
        await asyncio.sleep(self._retry_delay * 2 ** (failures - 1))

    async def _store_parked(self, name: str, reason: str, *, at: int) -> None:
        """Record the parked error where every process and `projections status` see it;
        unless a rebuild (or another process) has taken the projection over meanwhile."""
        try:
            async with self._engine.begin() as connection:
                await mark_parked(connection, name, reason, at=at, leader=self._leases.me)
        except Exception:
            # Parked here all the same; the next look at the checkpoints, finding it not
            # parked there, tries it again.
            logger.exception("could not record that projection %s is parked", name)

    async def _reload_checkpoint(self, name: str) -> None:
        async with self._checkpoint_engine.connect() as connection:
            self._take(await checkpoint_rows(connection, name))

    async def _publish_progress(self, after: int, events: Sequence[StoredEvent]) -> None:
        for watcher in self._watchers:
            self._tell_watcher(watcher)
        # A projection parked meanwhile had its events told (the mark moved on without it)
        # before it applied them: once it has caught up, what was cached of it is stale.
        told = self._notices.told_through
        caught_up = {n for n in self._resumed if self._checkpoints[n] >= told}
        if caught_up:
            self._resumed -= caught_up
            self._notices.stale(caught_up)
            await self._notices.forget_stale()
        reached = self._running_minimum()
        if reached <= self._reached:
            return
        await self._notices.tell(reached, after, events)
        self._reached = reached
        async with self._advanced:
            self._advanced.notify_all()

    def _tell_watcher(self, watcher: _Watcher) -> None:
        now = (
            self.applied_by(watcher.names),
            tuple(name for name in watcher.names if name in self._parked),
        )
        if now != watcher.last:
            watcher.last = now
            watcher.listener(*now)
