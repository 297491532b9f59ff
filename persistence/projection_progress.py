"""What the projector publishes of its progress: the read-your-writes mark that mutations
wait on, the positions its watchers (the event tail) follow, and, before the mark moves
past an event, the query cache told of what the event changed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from persistence.event_log import StoredEvent
from persistence.projection_states import ProjectionStates
from persistence.read_model_changes import ChangeNotices

Progress = Callable[[int, tuple[str, ...]], None]
"""Told (position, parked names) of the projections it watches: see `Projector.watch`."""


@dataclass(slots=True)
class _Watcher:
    names: tuple[str, ...]
    listener: Progress
    last: tuple[int, tuple[str, ...]] | None = None


class ProjectionProgress:
    def __init__(self, states: ProjectionStates, notices: ChangeNotices) -> None:
        self._states = states
        self._notices = notices
        self.reached = 0
        """The position every running projection has reached: the read-your-writes mark."""
        self._advanced = asyncio.Condition()
        self._watchers: list[_Watcher] = []

    def watch(self, names: Iterable[str], listener: Progress) -> None:
        watcher = _Watcher(tuple(names), listener)
        self._watchers.append(watcher)
        self._tell_watcher(watcher)

    async def wait_for(self, position: int) -> None:
        """Return once the mark has reached `position`; the caller bounds the wait."""
        async with self._advanced:
            await self._advanced.wait_for(lambda: self.reached >= position)

    async def publish(self, after: int, events: Sequence[StoredEvent]) -> None:
        for watcher in self._watchers:
            self._tell_watcher(watcher)
        # A projection parked meanwhile had its events told (the mark moved on without it)
        # before it applied them: once it has caught up, what was cached of it is stale.
        caught_up = self._states.caught_up(self._notices.told_through)
        if caught_up:
            self._notices.stale(caught_up)
            await self._notices.forget_stale()
        reached = self._states.running_minimum()
        if reached <= self.reached:
            return
        await self._notices.tell(reached, after, events)
        self.reached = reached
        async with self._advanced:
            self._advanced.notify_all()

    def _tell_watcher(self, watcher: _Watcher) -> None:
        now = (
            self._states.applied_by(watcher.names),
            tuple(name for name in watcher.names if name in self._states.parked),
        )
        if now != watcher.last:
            watcher.last = now
            watcher.listener(*now)
