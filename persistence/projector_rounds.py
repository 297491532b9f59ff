"""When the projector runs a round: at every poll, at once when woken, and, while a write
waits on a projection another process applies, every few milliseconds until that process's
checkpoint has passed the write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

logger = logging.getLogger("orderdesk.projector")

CHASE_INTERVAL = 0.005
"""Seconds between looks at a checkpoint another process is about to move: a mutation
here waits on it (read-your-writes), so this is the latency a follower adds to a write."""
CHASE_FOR = 2.0
"""How long a follower keeps looking that often after hearing of a new event; past it, a
leader that has not moved is looked for at the poll interval (and its lease timed out)."""


class Rounds:
    """The projector's pace: what it has heard of the log's head, and when it looks next."""

    def __init__(self, poll_interval: float) -> None:
        self._poll_interval = poll_interval
        self._known_head = 0
        self._chase_until = 0.0
        self._look = False
        self._wakeup = asyncio.Event()

    def wake(self, position: int | None) -> None:
        """See `Projector.wake`."""
        if position is None:
            self._look = True
        elif position > self._known_head:
            self._known_head = position
            self._chase_until = time.monotonic() + CHASE_FOR
        self._wakeup.set()

    def look_wanted(self, reached: int) -> bool:
        """Whether the checkpoints another process moves are worth a look this round: woken
        without a position, or told of one not `reached` yet."""
        return self._look or reached < self._known_head

    def looked(self) -> None:
        self._look = False

    async def run(
        self,
        *,
        reached: Callable[[], int],
        follows_any: Callable[[], bool],
        look_around: Callable[[], Awaitable[None]],
        catch_up: Callable[[], Awaitable[None]],
    ) -> None:
        """Run rounds until cancelled: `catch_up` each, `look_around` once a poll interval.

        `reached` is the position the projector has reached, `follows_any` whether another
        process applies any of its projections: only then is there anything to chase.
        """
        next_look = time.monotonic() + self._poll_interval
        while True:
            chasing = (
                reached() < self._known_head
                and time.monotonic() < self._chase_until
                and follows_any()
            )
            wait = CHASE_INTERVAL if chasing else self._poll_interval
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wakeup.wait()
            self._wakeup.clear()
            try:
                # By the clock, not only when idle: steady writes wake this every time.
                if time.monotonic() >= next_look:
                    next_look = time.monotonic() + self._poll_interval
                    await look_around()
                await catch_up()
            except Exception:
                # The database or the query cache is away; the next round retries, and the
                # read-your-writes mark stays where it is meanwhile.
                logger.exception("projector round failed; retrying")
