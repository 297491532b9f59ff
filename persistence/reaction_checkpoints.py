"""The reaction handlers' checkpoint rows as an operator sees and mends them: what each has
delivered, whether it is parked and why, who delivers to it; a retry, and a skip past an
event it cannot handle.

They sit in `projection_checkpoints` beside the projections' rows, each named
`reaction:<handler>`, so they share the projections' leases and parking
(persistence/projection_leases.py). Whatever changes a row here, the process that delivers
to the handler notices at its next look at the rows, within a poll interval.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.checkpoints import ADVANCE, checkpoint_rows, clear_parked
from persistence.event_log import EventLog, StoredEvent
from persistence.projection_leases import Leases
from persistence.projection_states import ProjectionStates, stored_statuses
from persistence.tables import projection_checkpoints

ROW_PREFIX = "reaction:"
"""A handler's checkpoint row is named so: projections and reactions share the table."""


@dataclass(frozen=True, slots=True)
class ReactionStatus:
    name: str
    position: int
    failures: int
    """Failed attempts at the event it is stuck on, as this process counted them."""
    parked_error: str | None
    leader: str | None = None
    """The process that delivers to it (host:pid:token), if one does."""
    retry_in: float | None = None
    """Seconds until this process tries a failed delivery again."""


class UnknownReaction(LookupError):
    """A name that is not one of the reaction handlers'."""


class NotParked(LookupError):
    """A skip asked of a handler that is not parked: only a stuck handler may skip."""


class ReactionCheckpoints:
    def __init__(
        self,
        *,
        takes: Mapping[str, frozenset[str]],
        engine: AsyncEngine,
        checkpoint_engine: AsyncEngine,
        log: EventLog,
        log_engine: AsyncEngine,
    ) -> None:
        self.takes = takes
        self.rows = {name: ROW_PREFIX + name for name in takes}
        self._engine = engine
        self._checkpoint_engine = checkpoint_engine
        self._log = log
        self._log_engine = log_engine

    def named(self, names: Iterable[str] | None) -> list[str]:
        """`names` checked against the handlers' (all of them when None)."""
        chosen = list(self.takes) if names is None else list(names)
        unknown = sorted(set(chosen) - set(self.takes))
        if unknown:
            raise UnknownReaction(
                f"no reaction handler is named {', '.join(unknown)}; "
                f"there are {', '.join(self.takes)}"
            )
        return chosen

    async def stored_status(self) -> list[ReactionStatus]:
        """Each handler's checkpoint, parked error and leader as the database holds them:
        what `orderdesk reactions status` shows, whichever process parked a handler. One
        without a row has never run (a new handler's row starts at the log's head)."""
        async with self._checkpoint_engine.connect() as connection:
            rows = await checkpoint_rows(connection)
        return [
            ReactionStatus(
                status.name.removeprefix(ROW_PREFIX),
                status.position,
                0,
                status.parked_error,
                status.leader,
            )
            for status in stored_statuses(self.rows.values(), rows)
        ]

    async def retry(self, names: Iterable[str] | None = None) -> list[str]:
        """Clear the parked error of the named handlers (every parked one when None).
        Returns the names that were parked."""
        chosen = self.named(names)
        async with self._engine.begin() as connection:
            parked = await clear_parked(connection, [self.rows[name] for name in chosen])
        return [row.removeprefix(ROW_PREFIX) for row in parked]

    async def skip(self, name: str) -> StoredEvent | None:
        """Move a parked handler past the event it is stuck at, and let it go on with the
        next: for an event it can never handle (a mail server that refuses an address for
        good). Returns the event skipped, or None if it had none to handle."""
        (name,) = self.named([name])
        row_name = self.rows[name]
        async with self._checkpoint_engine.connect() as connection:
            row = (await checkpoint_rows(connection, row_name)).get(row_name)
        if row is None or row.parked_error is None:
            raise NotParked(f"{name} is not parked; only a parked handler may skip an event")
        stuck = await self._next_taken(name, int(row.position))
        async with self._engine.begin() as connection:
            moved = await connection.execute(
                update(projection_checkpoints)
                .where(
                    projection_checkpoints.c.name == row_name,
                    projection_checkpoints.c.position == row.position,
                    projection_checkpoints.c.parked_error.is_not(None),
                )
                .values(
                    position=row.position if stuck is None else stuck.position, parked_error=None
                )
            )
        if moved.rowcount != 1:
            raise NotParked(f"{name} moved meanwhile (retried or skipped elsewhere); look again")
        return stuck

    async def advance(
        self, reached: Mapping[str, int], states: ProjectionStates, leases: Leases
    ) -> None:
        """Move each handler's checkpoint to what it was delivered, from where it stood and
        only while this process leads it (compare and set): a lease lost meanwhile leaves
        the checkpoint to the new leader, who delivers again what this one did."""
        checkpoints = states.checkpoints
        moving = {
            name: position
            for name, position in reached.items()
            if position > checkpoints[self.rows[name]]
        }
        if not moving:
            return
        lost: list[str] = []
        async with self._engine.begin() as connection:
            for name, position in moving.items():
                row = self.rows[name]
                moved = await connection.execute(
                    ADVANCE,
                    {
                        "b_name": row,
                        "b_from": checkpoints[row],
                        "b_leader": leases.me,
                        "position": position,
                    },
                )
                if moved.rowcount != 1:
                    lost.append(row)
        for name, position in moving.items():
            row = self.rows[name]
            if row in lost:
                leases.lost(row)
                continue
            checkpoints[row] = position
            # Past the event it failed at: a failure from here on is a first one.
            states.failures.pop(row, None)
        if lost:
            async with self._checkpoint_engine.connect() as connection:
                states.take(await checkpoint_rows(connection))

    async def _next_taken(self, name: str, after: int) -> StoredEvent | None:
        """The first event after `after` of a type the handler takes."""
        takes = self.takes[name]
        async with self._log_engine.connect() as connection:
            while True:
                events = await self._log.read(connection, after=after, limit=500)
                if not events:
                    return None
                for event in events:
                    if event.event_type in takes:
                        return event
                after = events[-1].position
