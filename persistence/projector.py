"""The projector: applies the event log, in order, to the read models.

It keeps its view of the checkpoints in persistence/projection_states.py, applies batches
with persistence/projection_batches.py, publishes its progress through
persistence/projection_progress.py and times its rounds with persistence/projector_rounds.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from opentelemetry.trace import Tracer
from sqlalchemy import Table, delete
from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.checkpoints import (
    checkpoint_rows,
    clear_parked,
    count_rebuilt,
    ensure_checkpoint_rows,
    reset_for_rebuild,
)
from persistence.event_log import EventLog, StoredEvent
from persistence.projection_batches import Apply, ProjectionBatches
from persistence.projection_lag import HeadSightings
from persistence.projection_leases import Leases
from persistence.projection_progress import Progress, ProjectionProgress
from persistence.projection_states import ProjectionStates, ProjectionStatus, stored_statuses
from persistence.projector_rounds import Rounds
from persistence.read_model_changes import ChangeNotices, ChangesNotTold, ReadModelChanges

logger = logging.getLogger("orderdesk.projector")

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


class ProjectionTimeout(TimeoutError):
    """The read models did not reach a position in time; the write itself is committed."""


class UnknownProjection(LookupError):
    """A projection name that is not one of the projector's."""


RELEASE_WITHIN = 5.0
"""Seconds stopping may spend handing the leases back; past it, they expire instead."""


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
        tracer: Tracer | None = None,
    ) -> None:
        self._log = log
        self._log_engine = log_engine
        self._engine = read_model_engine
        # Reads of the checkpoints alone (a follower looks often): not through the write
        # engine, whose every transaction takes SQLite's write lock.
        self._checkpoint_engine = checkpoint_engine or read_model_engine
        self._projections = list(projections)
        self._batch_size = batch_size
        self._leases = leases or Leases(timeout=lease_timeout)
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._notices = ChangeNotices(
            changes, log=log, log_engine=log_engine, batch_size=batch_size
        )
        self._states = ProjectionStates(
            (p.name for p in self._projections), leases=self._leases, notices=self._notices
        )
        self._batches = ProjectionBatches(
            engine=read_model_engine,
            checkpoint_engine=self._checkpoint_engine,
            leases=self._leases,
            states=self._states,
            max_attempts=max_attempts,
            retry_delay=retry_delay,
            tracer=tracer,
        )
        self._head = HeadSightings()
        self._progress = ProjectionProgress(self._states, self._notices)
        self._rounds = Rounds(poll_interval)

    @property
    def position(self) -> int:
        """The position every running projection has reached."""
        return self._progress.reached

    def applied_by(self, names: Iterable[str]) -> int:
        """The position every one of `names` has applied, parked ones included."""
        return self._states.applied_by(names)

    def watch(self, names: Iterable[str], listener: Progress) -> None:
        """Call `listener(position, parked)` whenever what `names` have all applied, or
        which of them are parked, changes; at once with how things stand now.

        Unlike `position`, parked projections count: what reads their rows (the event
        tail) must wait for them, where a mutation must not.
        """
        self._progress.watch(names, listener)

    def wake(self, position: int | None = None) -> None:
        """New events may be in the log (up to `position`, if known): look now instead of
        at the next poll, and, for projections another process applies, keep looking at
        its checkpoint until it has passed `position`."""
        if position is not None:
            self._head.heard(position)
        self._rounds.wake(position)

    def lag(self) -> list[tuple[str, int, float]]:
        """Each projection's lag behind the log's head as this process knows it: positions,
        and seconds since the oldest event it has not applied was heard of here
        (persistence/projection_lag.py)."""
        checkpoints = self._states.checkpoints
        if checkpoints:
            self._head.forget_through(min(checkpoints.values()))
        return [(p.name, *self._head.behind(checkpoints.get(p.name, 0))) for p in self._projections]

    async def start(self) -> None:
        await self._load_checkpoints()
        # A shared cache (Redis) may hold entries older than writes that an earlier run, or
        # a process that died, applied without telling it: start from a clean slate. If
        # the cache cannot be reached now, catch_up tries again before the mark moves.
        self._notices.stale(p.name for p in self._projections)
        try:
            await self.catch_up()
        except ChangesNotTold:
            # The read models are applied; the mark waits for the cache (see Rounds.run).
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
        if self._progress.reached >= position:
            return
        self.wake(position)
        try:
            async with asyncio.timeout(timeout):
                await self._progress.wait_for(position)
        except TimeoutError:
            raise ProjectionTimeout(
                f"the read models have reached position {self._progress.reached}, not {position}, "
                f"within {timeout} s"
            ) from None

    def status(self) -> list[ProjectionStatus]:
        """What this process knows, as of its last look at the checkpoints (each poll)."""
        return self._states.status()

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
            if self._rounds.look_wanted(self._progress.reached) and self._states.follows_any():
                self._rounds.looked()
                async with self._checkpoint_engine.connect() as connection:
                    self._states.take(await checkpoint_rows(connection))
                self._head.forget_through(min(self._states.checkpoints.values(), default=0))
                if any(self._leases.claimable(p.name) for p in self._projections):
                    # Its leader let go, or died on this host: take over now, not at the
                    # next poll, as a write here is waiting.
                    await self._settle_leases()
                    while await self._advance_once():  # noqa: ASYNC110 - a yield, not a wait
                        await asyncio.sleep(0)
                await self._progress.publish(self._progress.reached, [])

    async def _look_around(self) -> None:
        """Once a poll: read every checkpoint row (positions, parked errors, rebuild counts,
        leaders), renew the leases held and take over those free or expired."""
        async with self._lock:
            await self._settle_leases()
            await self._progress.publish(self._progress.reached, [])

    async def _settle_leases(self) -> None:
        async with self._engine.begin() as connection:
            self._states.take(await checkpoint_rows(connection))
            # By name, as a rebuild and a release lock them: no two lock in other orders.
            for name in sorted(p.name for p in self._projections):
                await self._leases.settle(connection, name)

    async def stored_status(self) -> list[ProjectionStatus]:
        """Each projection's checkpoint, parked error and leader as the read database holds
        them.

        Reads only, applies nothing: this is what `orderdesk projections status` shows,
        whichever process parked a projection. A projection without a checkpoint row has
        never run and stands at 0.
        """
        async with self._checkpoint_engine.connect() as connection:
            rows = await checkpoint_rows(connection)
        return stored_statuses((p.name for p in self._projections), rows)

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
        self._states.retried(parked)
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
            if not self._states.checkpoints:  # not started: the command line rebuilds this way
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
                self._states.reset(projection.name)
                self._leases.forced(projection.name)
            rebuilt = [projection.name for projection in targets]
            await self._notices.rebuilt(rebuilt)
            # Only the rebuilt ones: the others follow the log as they did, at their pace.
            while await self._advance_once(targets):
                pass
            # What was read (and cached) while the tables filled up is stale now, here and
            # in other processes (which notice the count, `ProjectionStates.take`).
            async with self._engine.begin() as connection:
                await count_rebuilt(connection, rebuilt)
                self._states.take(await checkpoint_rows(connection))
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
        await self._rounds.run(
            reached=lambda: self._progress.reached,
            follows_any=self._states.follows_any,
            look_around=self._look_around,
            catch_up=self._catch_up,
        )

    async def _load_checkpoints(self) -> None:
        """Read (or create) each checkpoint. A projection parked stays parked, whichever
        process parked it, until `retry` or `rebuild` (`orderdesk projections ...`)."""
        async with self._engine.begin() as connection:
            rows = await ensure_checkpoint_rows(connection, (p.name for p in self._projections))
        self._states.loaded(rows)
        self._progress.reached = self._states.running_minimum()
        # What was applied before is made stale as a whole at start (`start`).
        self._notices.told_through = max(self._notices.told_through, self._progress.reached)

    async def _advance_once(self, only: Sequence[Projection] | None = None) -> bool:
        candidates = self._projections if only is None else only
        parked = self._states.parked
        leading = [p for p in candidates if p.name not in parked and self._leases.holds(p.name)]
        if not leading:
            return False
        start = min(self._states.checkpoints[p.name] for p in leading)
        async with self._log_engine.connect() as connection:
            events = await self._log.read(connection, after=start, limit=self._batch_size)
        if events:
            self._head.heard(events[-1].position)
        for projection in leading:
            await self._batches.apply(projection.name, projection.apply, events)
        self._head.forget_through(min(self._states.checkpoints.values(), default=0))
        # Even with no new events: a mark held back by a failed `changes` moves on now.
        await self._progress.publish(start, events)
        return bool(events)
