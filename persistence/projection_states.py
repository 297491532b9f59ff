"""What this process knows of each projection, as its last read of the checkpoint rows
showed: its position, its failed attempts, its parked error, its rebuild count.

Every process keeps such a view of the same rows (`Projector`): the rows are the truth,
so a retry or a rebuild made in another process, or on the command line, is seen here at
the next read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row

from persistence.projection_leases import Leases
from persistence.read_model_changes import ChangeNotices


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    name: str
    position: int
    failures: int
    parked_error: str | None
    leader: str | None = None
    """The process that applies it (host:pid:token), if one does."""


class ProjectionStates:
    """The projector's view of its projections' checkpoint rows, by projection name."""

    def __init__(self, names: Iterable[str], *, leases: Leases, notices: ChangeNotices) -> None:
        self._names = tuple(names)
        self._leases = leases
        self._notices = notices
        self.checkpoints: dict[str, int] = {}
        self.failures: dict[str, int] = {}
        self.parked: dict[str, str] = {}
        self.resumed: set[str] = set()
        """Back from being parked: told stale as a whole once caught up (`caught_up`)."""
        self.rebuilds: dict[str, int] = {}

    def loaded(self, rows: dict[str, Row[Any]]) -> None:
        """The rows as read at start, every projection's among them."""
        self.rebuilds = {name: int(row.rebuilds) for name, row in rows.items()}
        for name in self._names:
            self.checkpoints.setdefault(name, 0)
        self.take(rows)

    def take(self, rows: dict[str, Row[Any]]) -> None:
        """Make what the checkpoint rows say this process's view."""
        for name in self._names:
            row = rows.get(name)
            if row is None:
                continue
            self.checkpoints[name] = int(row.position)
            self._leases.observe(name, row.leader, int(row.beat))
            if row.parked_error is not None:
                self.parked[name] = row.parked_error
            elif self.parked.pop(name, None) is not None:
                # Retried or rebuilt, here or by another process: a fresh count of attempts.
                self.failures.pop(name, None)
                self.resumed.add(name)
            # A rebuild elsewhere counts this up as it starts and as it ends: what was read
            # (and cached) meanwhile is stale, though positions may end where they were.
            rebuilds = int(row.rebuilds)
            if self._notices.wanted and self.rebuilds.get(name, rebuilds) != rebuilds:
                self._notices.stale([name])
            self.rebuilds[name] = rebuilds

    def retried(self, names: Iterable[str]) -> None:
        """`names` were parked and are not any more (`Projector.retry`)."""
        for name in names:
            if self.parked.pop(name, None) is not None:
                self.resumed.add(name)
            self.failures.pop(name, None)

    def reset(self, name: str) -> None:
        """Back to 0 and not parked, as a rebuild starts."""
        self.checkpoints[name] = 0
        self.failures.pop(name, None)
        self.parked.pop(name, None)

    def caught_up(self, told: int) -> set[str]:
        """Those back from being parked that have applied up to `told`; forgotten as such."""
        caught_up = {n for n in self.resumed if self.checkpoints[n] >= told}
        self.resumed -= caught_up
        return caught_up

    def running_minimum(self) -> int:
        running = [self.checkpoints[name] for name in self._names if name not in self.parked]
        return min(running, default=max(self.checkpoints.values(), default=0))

    def applied_by(self, names: Iterable[str]) -> int:
        """The position every one of `names` has applied, parked ones included."""
        return min((self.checkpoints.get(name, 0) for name in names), default=0)

    def follows_any(self) -> bool:
        return any(name not in self.parked and not self._leases.holds(name) for name in self._names)

    def status(self) -> list[ProjectionStatus]:
        return [
            ProjectionStatus(
                name,
                self.checkpoints.get(name, 0),
                self.failures.get(name, 0),
                self.parked.get(name),
                self._leases.leader_of(name),
            )
            for name in self._names
        ]


def stored_statuses(names: Iterable[str], rows: dict[str, Row[Any]]) -> list[ProjectionStatus]:
    """Each projection's status as its checkpoint row has it: failed attempts are counted
    by the process that makes them, and not stored."""
    statuses = []
    for name in names:
        row = rows.get(name)
        if row is None:
            statuses.append(ProjectionStatus(name, 0, 0, None))
        else:
            statuses.append(
                ProjectionStatus(name, int(row.position), 0, row.parked_error, row.leader)
            )
    return statuses
