"""How far behind the log's head a follower of the log is, in positions and in seconds.

The log's events carry the writer's clock, which tests (and a host with a wrong clock) may
set anywhere; so the seconds are this process's own: the time since it first heard of the
oldest event the follower has not reached yet (0 when caught up). A process that hears of
an event late (a lost wake-up, found at the next poll) counts from then.
"""

from __future__ import annotations

import time
from collections import deque

CAPACITY = 4096
"""Sightings kept while a follower lags; past it, new heads are merged into the newest."""


class HeadSightings:
    """When this process first heard of each new head of the log, for as long as some
    follower has not reached it.

    Cheap where it is told (a comparison, and an append when the head moved); the lag is
    worked out only when asked (a scrape). Bounded: while a follower stays behind (a
    parked projection) more than `CAPACITY` heads, later ones are merged into the newest
    sighting, whose time is older than theirs, so a lag may then read high, never low.
    """

    __slots__ = ("_capacity", "_sightings", "head")

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._capacity = capacity
        self._sightings: deque[tuple[int, float]] = deque()
        self.head = 0

    def heard(self, position: int) -> None:
        if position <= self.head:
            return
        self.head = position
        sightings = self._sightings
        if len(sightings) >= self._capacity:
            sightings[-1] = (position, sightings[-1][1])
        else:
            sightings.append((position, time.monotonic()))

    def forget_through(self, position: int) -> None:
        """Every follower has reached `position`: what was heard up to it is of no use."""
        sightings = self._sightings
        while sightings and sightings[0][0] <= position:
            sightings.popleft()

    def behind(self, position: int) -> tuple[int, float]:
        """Positions from `position` to the head, and seconds since the first event past
        `position` was heard of."""
        if position >= self.head:
            return 0, 0.0
        now = time.monotonic()
        for sighted, at in self._sightings:
            if sighted > position:
                return self.head - position, now - at
        return self.head - position, 0.0
