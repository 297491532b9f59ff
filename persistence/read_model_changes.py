"""What the query cache is told of the read models' changes, and how far it has been told.

The projector hands every event to `ReadModelChanges` before the read-your-writes mark
moves past it, and whole read models when they are stale as a whole (a rebuild, a start,
a projection back from being parked). What fails to be told is told again at the next
round; until then the mark stays where it is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.event_log import EventLog, StoredEvent


class ReadModelChanges(Protocol):
    """Told what changed in the read models before the read-your-writes mark moves past
    it (the query cache's invalidation). If it raises, the mark stays where it is and the
    same events are handed to it again at the next round."""

    async def applied(self, events: Sequence[StoredEvent]) -> None: ...

    async def rebuilt(self, names: Iterable[str]) -> None: ...


class ChangesNotTold(Exception):
    """`ReadModelChanges` failed (the query cache is away): the read models are applied,
    but the read-your-writes mark does not move until it has been told."""


class ChangeNotices:
    """The told-through position and the read models waiting to be told stale as a whole."""

    def __init__(
        self,
        changes: ReadModelChanges | None,
        *,
        log: EventLog,
        log_engine: AsyncEngine,
        batch_size: int,
    ) -> None:
        self._changes = changes
        self._log = log
        self._log_engine = log_engine
        self._batch_size = batch_size
        self.told_through = 0
        self._stale: set[str] = set()

    @property
    def wanted(self) -> bool:
        """Whether anything listens (a query cache is configured)."""
        return self._changes is not None

    def stale(self, names: Iterable[str]) -> None:
        """These read models are stale as a whole; told at the next `forget_stale`."""
        self._stale.update(names)

    async def forget_stale(self) -> None:
        """Tell `changes` of read models that are stale as a whole; until that has gone
        through, it is tried again every round."""
        names = set(self._stale)
        if self._changes is not None and names:
            try:
                await self._changes.rebuilt(sorted(names))
            except Exception as error:
                raise ChangesNotTold(str(error)) from error
        # Only what was told: a name added meanwhile waits for the next round.
        self._stale -= names

    async def rebuilt(self, names: Iterable[str]) -> None:
        """Stale as a whole; told now if the cache answers, else before the mark moves
        again (`forget_stale`). A rebuild goes on either way."""
        self.stale(names)
        with contextlib.suppress(ChangesNotTold):
            await self.forget_stale()

    async def tell(self, position: int, after: int, events: Sequence[StoredEvent]) -> None:
        """Hand `changes` every event up to `position` it has not been told of yet.

        `events` (read after `after`) usually hold them all. When another process moved a
        checkpoint past them, or an earlier call failed, the rest comes from the log: the
        changes are told from the log, not from what this process applied, since another
        process may have applied them.
        """
        told = self.told_through
        if self._changes is None or position <= told:
            return
        pending: list[StoredEvent] = []
        covered = told
        if after <= told and events:
            pending = [e for e in events if told < e.position <= position]
            covered = max(told, events[-1].position)
        if covered < position:  # a follower, or after a failure
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
        self.told_through = position
