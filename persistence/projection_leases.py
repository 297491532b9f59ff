"""Which process applies a projection: a lease per projection, kept in its checkpoint row.

Exactly one process applies a given projection at a time and the others follow its
checkpoint; projectors of several workers racing over the same rows deadlocked and logged
each lost race as a failure. The holder counts up the row's `beat` as it works (with each
batch it applies, and at each poll when idle). Another process takes the lease over:

- at once when it is free (its holder released it on stopping, or never took it);
- at once when its holder is a process of this host that no longer exists (a worker
  killed with `kill -9`, and every process after a crash of the whole server);
- when the beat has not moved for `timeout` seconds by the follower's own clock, so no
  clocks are compared across hosts (a holder frozen, or on a host that died).

Taking over is a compare and set on (leader, beat), so of two processes that saw the same
expired lease one wins. A holder that was only slow and comes back finds the lease gone
at its next batch (the checkpoint's advance names the leader) and follows from then on:
the lease keeps processes from fighting, the checkpoint's compare and set keeps any batch
from being applied twice.
"""

from __future__ import annotations

import functools
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import bindparam, update
from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.tables import projection_checkpoints

_CLAIM = (
    update(projection_checkpoints)
    .where(
        projection_checkpoints.c.name == bindparam("b_name"),
        projection_checkpoints.c.leader.is_not_distinct_from(bindparam("b_leader")),
        projection_checkpoints.c.beat == bindparam("b_beat"),
    )
    .values(leader=bindparam("b_me"), beat=projection_checkpoints.c.beat + 1)
)

_RELEASE = (
    update(projection_checkpoints)
    .where(
        projection_checkpoints.c.name == bindparam("b_name"),
        projection_checkpoints.c.leader == bindparam("b_me"),
    )
    .values(leader=None, beat=projection_checkpoints.c.beat + 1)
)


_RENEW = (
    update(projection_checkpoints)
    .where(
        projection_checkpoints.c.name.in_(bindparam("b_names", expanding=True)),
        projection_checkpoints.c.leader == bindparam("b_me"),
    )
    .values(beat=projection_checkpoints.c.beat + 1)
)


def process_name() -> str:
    """host:pid:token. The token tells apart two projectors of one process (tests run two
    apps side by side), the host and pid let this host see that a holder has died. The
    host is the hostname and the pid namespace: containers may share a hostname, and a
    pid is only meaningful in its own namespace."""
    return f"{_host()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@functools.cache
def _host() -> str:
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:  # not Linux: the hostname alone
        return socket.gethostname()
    return f"{socket.gethostname()}/{namespace}"


def _died_here(leader: str) -> bool:
    """A holder of this host whose process is gone. Any doubt reads as alive: then the
    beat's timeout decides."""
    host, _, rest = leader.partition(":")
    pid_text, _, _token = rest.partition(":")
    if host != _host() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@dataclass(slots=True)
class _Seen:
    leader: str | None
    beat: int
    since: float


class Leases:
    """This process's view of who leads each projection, and the statements that change it."""

    def __init__(
        self,
        *,
        timeout: float,
        me: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        died: Callable[[str], bool] = _died_here,
    ) -> None:
        self.me = me or process_name()
        self._timeout = timeout
        self._clock = clock
        self._died = died
        self._seen: dict[str, _Seen] = {}
        self._held: set[str] = set()

    def holds(self, name: str) -> bool:
        return name in self._held

    @property
    def held(self) -> frozenset[str]:
        return frozenset(self._held)

    def leader_of(self, name: str) -> str | None:
        seen = self._seen.get(name)
        return None if seen is None else seen.leader

    def observe(self, name: str, leader: str | None, beat: int) -> None:
        """What a read of the checkpoint row showed; a beat that moved restarts the clock."""
        seen = self._seen.get(name)
        if seen is None or (seen.leader, seen.beat) != (leader, beat):
            self._seen[name] = _Seen(leader, beat, self._clock())
        if leader == self.me:
            self._held.add(name)
        else:
            self._held.discard(name)

    def claimable(self, name: str) -> bool:
        """Held by no one alive, as far as the last read showed: worth a `settle` now."""
        seen = self._seen.get(name)
        return name not in self._held and seen is not None and self._takeable(seen)

    def lost(self, name: str) -> None:
        """The row no longer names this process (a batch's advance found another leader)."""
        self._held.discard(name)

    def forced(self, name: str) -> None:
        """This process took the lease unconditionally (a rebuild does)."""
        self._held.add(name)
        self._seen.pop(name, None)

    async def settle(self, connection: AsyncConnection, name: str) -> bool:
        """Renew the lease if held, take it if it is free or expired; True if held after."""
        seen = self._seen.get(name)
        if seen is None:
            return False
        if seen.leader != self.me and not self._takeable(seen):
            return False
        claimed = await connection.execute(
            _CLAIM,
            {"b_name": name, "b_leader": seen.leader, "b_beat": seen.beat, "b_me": self.me},
        )
        if claimed.rowcount == 1:
            self._held.add(name)
            self._seen[name] = _Seen(self.me, seen.beat + 1, self._clock())
            return True
        # Someone else moved it since it was read: look again at the next poll.
        self._held.discard(name)
        self._seen.pop(name, None)
        return False

    async def renew(self, connection: AsyncConnection, names: list[str]) -> bool:
        """A beat for each of `names` still held here, for a holder whose work takes longer
        than a lease (it would otherwise look dead); False if one was taken over since."""
        renewed = await connection.execute(_RENEW, {"b_names": names, "b_me": self.me})
        return renewed.rowcount == len(names)

    async def release(self, connection: AsyncConnection) -> None:
        """Hand every held lease back, so that another process takes over without waiting."""
        for name in sorted(self._held):
            await connection.execute(_RELEASE, {"b_name": name, "b_me": self.me})
        self._held.clear()
        self._seen.clear()

    def _takeable(self, seen: _Seen) -> bool:
        if seen.leader is None or self._died(seen.leader):
            return True
        return self._clock() - seen.since >= self._timeout
