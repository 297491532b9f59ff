"""The projector: applies the event log, in order, to the read models."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Insert, Table, bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from persistence.event_log import EventLog, StoredEvent
from persistence.tables import projection_checkpoints

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


class ReadModelChanges(Protocol):
    """Told what changed in the read models before the read-your-writes mark moves past
    it (the query cache's invalidation). If it raises, the mark stays where it is and the
    same events are handed to it again at the next round."""

    async def applied(self, events: Sequence[StoredEvent]) -> None: ...

    async def rebuilt(self, names: Iterable[str]) -> None: ...


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    name: str
    position: int
    failures: int
    parked_error: str | None


class ProjectionTimeout(TimeoutError):
    """The read models did not reach a position in time; the write itself is committed."""


class ChangesNotTold(Exception):
    """`ReadModelChanges` failed (the query cache is away): the read models are applied,
    but the read-your-writes mark does not move until it has been told."""


class UnknownProjection(LookupError):
    """A projection name that is not one of the projector's."""


_ADVANCE = (
    update(projection_checkpoints)
    .where(
        projection_checkpoints.c.name == bindparam("b_name"),
        projection_checkpoints.c.position == bindparam("b_from"),
    )
    .values(parked_error=None)
)


_LOCK_CHECKPOINT = (
    select(projection_checkpoints.c.position)
    .where(projection_checkpoints.c.name == bindparam("b_name"))
    .with_for_update()
)


class _CheckpointMoved(Exception):
    """Another process advanced the projection first; this batch must not be applied twice."""


class Projector:
    """Follows the event log and keeps each projection's checkpoint with its read model.

    A projection's rows and its checkpoint change in one transaction, so after a crash it
    resumes exactly where its last commit left it, and a replay changes nothing. Several
    processes may run projectors on one database: the checkpoint advances only from the
    position the batch started at (compare and set), so one of two racing processes rolls
    back instead of applying a batch twice.
    """

    def __init__(
        self,
        *,
        log: EventLog,
        log_engine: AsyncEngine,
        read_model_engine: AsyncEngine,
        projections: Sequence[Projection],
        poll_interval: float = 1.0,
        batch_size: int = 500,
        max_attempts: int = 5,
        retry_delay: float = 0.05,
        changes: ReadModelChanges | None = None,
    ) -> None:
        self._log = log
        self._log_engine = log_engine
        self._engine = read_model_engine
        self._projections = list(projections)
        self._poll_interval = poll_interval
        self._batch_size = batch_size
        self._max_attempts = max_attempts
        self._retry_delay = retry_delay
        self._checkpoints: dict[str, int] = {}
        self._failures: dict[str, int] = {}
        self._parked: dict[str, str] = {}
        self._reached = 0
        self._advanced = asyncio.Condition()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[int], None]] = []
        self._lock = asyncio.Lock()
        self._changes = changes
        self._told_through = 0
        self._stale_everything: set[str] = set()
        self._rebuilds: dict[str, int] = {}

    @property
    def position(self) -> int:
        """The position every running projection has reached."""
        return self._reached

    def on_advance(self, listener: Callable[[int], None]) -> None:
        """Call `listener(position)` each time every running projection has passed `position`."""
        self._listeners.append(listener)

    def wake(self) -> None:
        """New events may be in the log: look now instead of at the next poll."""
        self._wakeup.set()

    async def start(self) -> None:
        await self._load_checkpoints()
        # A shared cache (Redis) may hold entries older than writes that an earlier run, or
        # a process that died, applied without telling it: start from a clean slate. If
        # the cache cannot be reached now, catch_up tries again before the mark moves.
        self._stale_everything = {p.name for p in self._projections}
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

    # The timeout is ours to own: its error names the positions, which asyncio.timeout cannot.
    async def wait_for(self, position: int, timeout: float) -> None:  # noqa: ASYNC109
        """Return once every running projection has applied the event at `position`.

        Parked projections are not waited for: a broken read model must not hold up
        every write. A mutation whose own read model is parked finds its row missing and
        says so (READ_MODEL_LAGGING); the write itself is committed.
        """
        if self._reached >= position:
            return
        self.wake()
        try:
            async with asyncio.timeout(timeout), self._advanced:
                await self._advanced.wait_for(lambda: self._reached >= position)
        except TimeoutError:
            raise ProjectionTimeout(
                f"the read models have reached position {self._reached}, not {position}, "
                f"within {timeout} s"
            ) from None

    def status(self) -> list[ProjectionStatus]:
        """What this process knows: its in-memory positions, failures and parked errors."""
        return [
            ProjectionStatus(
                p.name,
                self._checkpoints.get(p.name, 0),
                self._failures.get(p.name, 0),
                self._parked.get(p.name),
            )
            for p in self._projections
        ]

    async def catch_up(self) -> None:
        """Apply everything in the log now; returns when no projection has more to do."""
        async with self._lock:
            await self._forget_stale()
            # SQLite runs in the loop's thread: sleep(0) lets requests in between batches.
            while await self._advance_once():  # noqa: ASYNC110 - a yield, not a wait
                await asyncio.sleep(0)

    async def _forget_stale(self) -> None:
        """Tell `changes` of read models that are stale as a whole (see `start` and
        `_notice_rebuilds`); until that has gone through, it is tried again every round."""
        names = set(self._stale_everything)
        if self._changes is not None and names:
            try:
                await self._changes.rebuilt(sorted(names))
            except Exception as error:
                raise ChangesNotTold(str(error)) from error
        # Only what was told: a name added meanwhile waits for the next round.
        self._stale_everything -= names

    async def _notice_rebuilds(self) -> None:
        """Notice a rebuild run by another process (`orderdesk projections rebuild`).

        What was read here meanwhile (a read model emptied, then filling up) may be cached,
        and positions end where they were, so a rebuild counts up `rebuilds` as it starts
        and as it ends; a count that moved makes that read model stale as a whole. One
        small read per poll, when idle.
        """
        if self._changes is None:
            return
        async with self._engine.connect() as connection:
            rows = await connection.execute(
                select(projection_checkpoints.c.name, projection_checkpoints.c.rebuilds)
            )
            counts = {row.name: int(row.rebuilds) for row in rows}
        for projection in self._projections:
            count = counts.get(projection.name, 0)
            if self._rebuilds.get(projection.name, 0) != count:
                self._stale_everything.add(projection.name)
            self._rebuilds[projection.name] = count

    async def stored_status(self) -> list[ProjectionStatus]:
        """Each projection's checkpoint and parked error as the read database holds them.

        Reads only, applies nothing: this is what `orderdesk projections status` shows,
        whichever process parked a projection. A projection without a checkpoint row has
        never run and stands at 0.
        """
        async with self._engine.connect() as connection:
            rows = await connection.execute(select(projection_checkpoints))
            stored = {row.name: (int(row.position), row.parked_error) for row in rows}
        statuses = []
        for projection in self._projections:
            position, parked_error = stored.get(projection.name, (0, None))
            statuses.append(ProjectionStatus(projection.name, position, 0, parked_error))
        return statuses

    async def log_head(self) -> int:
        """The highest position in the event log, to compare checkpoints with."""
        async with self._log_engine.connect() as connection:
            return await self._log.head(connection)

    async def rebuild(self, names: Iterable[str] | None = None) -> None:
        """Replay the named projections (all when None) from the start of the log.

        One transaction empties the projection's tables, sets its checkpoint to 0 and
        clears its parked error; then the log is applied again, a batch per transaction,
        as at any catch-up. What a running server sees meanwhile: its readers find the
        rebuilt read models empty, then filling up batch by batch until they reach the head
        (lists are short, an order may read as null) - rebuild when that is acceptable, or
        with the servers stopped. Its projector finds the checkpoint moved (compare and
        set), reloads it and joins in; no event is applied twice, and nothing is lost.
        Within this process, mutations keep waiting until the rebuild has passed their
        own events.
        """
        targets = self._select(names)
        async with self._lock:
            if not self._checkpoints:  # not started: the command line rebuilds this way
                await self._load_checkpoints()
            async with self._engine.begin() as connection:
                for projection in targets:
                    # Children before parents, should a projection's tables refer to each other.
                    for table in reversed(projection.tables):
                        await connection.execute(delete(table))
                    reset = await connection.execute(
                        update(projection_checkpoints)
                        .where(projection_checkpoints.c.name == projection.name)
                        .values(
                            position=0,
                            parked_error=None,
                            rebuilds=projection_checkpoints.c.rebuilds + 1,
                        )
                    )
                    if reset.rowcount != 1:
                        await connection.execute(
                            _new_checkpoint(connection, projection.name, rebuilds=1)
                        )
            for projection in targets:
                self._checkpoints[projection.name] = 0
                self._failures.pop(projection.name, None)
                self._parked.pop(projection.name, None)
            names = [projection.name for projection in targets]
            await self._rebuilt(names)
            # Only the rebuilt ones: the others follow the log as they did, at their pace.
            while await self._advance_once(targets):
                pass
            # What was read (and cached) while the tables filled up is stale now, here and
            # in other processes (which notice the count, `_notice_rebuilds`).
            async with self._engine.begin() as connection:
                await connection.execute(
                    update(projection_checkpoints)
                    .where(projection_checkpoints.c.name.in_(names))
                    .values(rebuilds=projection_checkpoints.c.rebuilds + 1)
                )
            await self._rebuilt(names)

    async def _rebuilt(self, names: Iterable[str]) -> None:
        """The read models `names` are stale as a whole; told now if the cache answers,
        else before the mark moves again (`_forget_stale`). A rebuild goes on either way."""
        self._stale_everything.update(names)
        with contextlib.suppress(ChangesNotTold):
            await self._forget_stale()

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
        loop = asyncio.get_running_loop()
        next_look = loop.time() + self._poll_interval
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_interval):
                    await self._wakeup.wait()
            self._wakeup.clear()
            try:
                # By the clock, not only when idle: steady writes wake this every time.
                if loop.time() >= next_look:
                    next_look = loop.time() + self._poll_interval
                    await self._notice_rebuilds()
                await self.catch_up()
            except Exception:
                # The database or the query cache is away; the next round retries, and the
                # read-your-writes mark stays where it is meanwhile.
                logger.exception("projector round failed; retrying")

    async def _load_checkpoints(self) -> None:
        """Read (or create) each checkpoint. A projection parked by an earlier run is tried
        again: a restart, after a fix, is the way to resume without a rebuild."""
        async with self._engine.begin() as connection:
            rows = (await connection.execute(select(projection_checkpoints))).all()
            missing = {p.name for p in self._projections} - {row.name for row in rows}
            if missing:
                # Every worker of a fresh database gets here at once: the rows one inserts
                # are the others' to skip, and what counts is what is stored afterwards.
                for name in sorted(missing):
                    await connection.execute(_new_checkpoint(connection, name))
                rows = (await connection.execute(select(projection_checkpoints))).all()
            stored = {row.name: row.position for row in rows}
            self._rebuilds = {row.name: int(row.rebuilds) for row in rows}
            for projection in self._projections:
                self._rebuilds.setdefault(projection.name, 0)
                self._checkpoints[projection.name] = stored.get(projection.name, 0)
        self._reached = self._running_minimum()
        # What was applied before is made stale as a whole at start (`start`).
        self._told_through = max(self._told_through, self._reached)

    def _running_minimum(self) -> int:
        running = [
            self._checkpoints[p.name] for p in self._projections if p.name not in self._parked
        ]
        return min(running, default=max(self._checkpoints.values(), default=0))

    async def _advance_once(self, only: Sequence[Projection] | None = None) -> bool:
        candidates = self._projections if only is None else only
        running = [p for p in candidates if p.name not in self._parked]
        if not running:
            return False
        start = min(self._checkpoints[p.name] for p in running)
        async with self._log_engine.connect() as connection:
            events = await self._log.read(connection, after=start, limit=self._batch_size)
        for projection in running:
            await self._apply(projection, events)
        # Even with no new events: a mark held back by a failed `changes` moves on now.
        await self._publish_progress(start, events)
        return bool(events)

    async def _apply(self, projection: Projection, events: list[StoredEvent]) -> None:
        checkpoint = self._checkpoints[projection.name]
        todo = [event for event in events if event.position > checkpoint]
        if not todo:
            return
        try:
            async with self._engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    # Take the checkpoint's row lock before any read-model row: projectors
                    # of several processes then apply one projection one at a time. Without
                    # it, two batches that start at different positions lock the same rows
                    # in different orders and deadlock. (SQLite's writers take turns anyway.)
                    locked = await connection.scalar(_LOCK_CHECKPOINT, {"b_name": projection.name})
                    if locked != checkpoint:
                        raise _CheckpointMoved
                for event in todo:
                    await projection.apply(connection, event)
                moved = await connection.execute(
                    _ADVANCE,
                    {
                        "b_name": projection.name,
                        "b_from": checkpoint,
                        "position": todo[-1].position,
                    },
                )
                if moved.rowcount != 1:
                    raise _CheckpointMoved
        except _CheckpointMoved:
            await self._reload_checkpoint(projection.name)
            return
        except Exception as error:
            # Another process (a second server, a rebuild) may have applied these events
            # first, so that ours collided with its rows: a lost race, not a broken projection.
            await self._reload_checkpoint(projection.name)
            if self._checkpoints[projection.name] != checkpoint:
                return
            await self._failed(projection, todo[0], error)
            return
        self._checkpoints[projection.name] = todo[-1].position
        self._failures.pop(projection.name, None)

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
                "projection %s is parked until it is rebuilt or the process restarts",
                projection.name,
            )
            await self._store_parked(projection.name, reason)
            return
        await asyncio.sleep(self._retry_delay * 2 ** (failures - 1))

    async def _store_parked(self, name: str, reason: str) -> None:
        """Record the parked error where `projections status` and other processes see it."""
        try:
            async with self._engine.begin() as connection:
                await connection.execute(
                    update(projection_checkpoints)
                    .where(projection_checkpoints.c.name == name)
                    .values(parked_error=reason)
                )
        except Exception:
            # The projection is parked in this process all the same; readiness reports it.
            logger.exception("could not record that projection %s is parked", name)

    async def _tell_changes(self, position: int, after: int, events: Sequence[StoredEvent]) -> None:
        """Hand `changes` every event up to `position` it has not been told of yet.

        `events` (read after `after`) usually hold them all. When another process moved a
        checkpoint past them, or an earlier call failed, the rest comes from the log: the
        changes are told from the log, not from what this process applied, since another
        process may have applied them.
        """
        told = self._told_through
        if self._changes is None or position <= told:
            return
        pending: list[StoredEvent] = []
        covered = told
        if after <= told and events:
            pending = [e for e in events if told < e.position <= position]
            covered = max(told, events[-1].position)
        if covered < position:  # rarely: the batch usually holds them all
            async with self._log_engine.connect() as connection:
                while covered < position:
                    more = await self._log.read(
                        connection, after=covered, up_to=position, limit=self._batch_size
                    )
                    if not more:
                        break
                    pending.extend(more)
                    covered = more[-1].position
        try:
            await self._changes.applied(pending)
        except Exception as error:
            raise ChangesNotTold(str(error)) from error
        self._told_through = position

    async def _reload_checkpoint(self, name: str) -> None:
        async with self._engine.connect() as connection:
            position = await connection.scalar(
                select(projection_checkpoints.c.position).where(
                    projection_checkpoints.c.name == name
                )
            )
        self._checkpoints[name] = int(position or 0)

    async def _publish_progress(self, after: int, events: Sequence[StoredEvent]) -> None:
        reached = self._running_minimum()
        if reached <= self._reached:
            return
        await self._tell_changes(reached, after, events)
        self._reached = reached
        async with self._advanced:
            self._advanced.notify_all()
        for listener in self._listeners:
            listener(reached)


def _new_checkpoint(connection: AsyncConnection, name: str, *, rebuilds: int = 0) -> Insert:
    """A checkpoint row at 0 that another process may have inserted first: then nothing."""
    values = {"name": name, "position": 0, "rebuilds": rebuilds}
    if connection.dialect.name == "postgresql":
        return postgresql_insert(projection_checkpoints).values(values).on_conflict_do_nothing()
    return sqlite_insert(projection_checkpoints).values(values).on_conflict_do_nothing()
