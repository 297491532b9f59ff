"""What follows a reaction handler's failure: another try after a backoff that doubles,
then, after `max_attempts` at one event, the handler parked with its error where every
process and `orderdesk reactions status` see it (its checkpoint row)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.checkpoints import mark_parked
from persistence.event_log import StoredEvent
from persistence.projection_leases import Leases
from persistence.projection_states import ProjectionStates

logger = logging.getLogger("orderdesk.reactor")


class ReactionFailures:
    def __init__(
        self,
        *,
        rows: dict[str, str],
        states: ProjectionStates,
        leases: Leases,
        engine: AsyncEngine,
        settling: asyncio.Lock,
        max_attempts: int,
        retry_delay: float,
        max_retry_delay: float,
    ) -> None:
        """`settling` is the reactor's lock on reading the checkpoint rows, which a park
        must not interleave with."""
        self._rows = rows
        self._states = states
        self._leases = leases
        self._engine = engine
        self._settling = settling
        self._max_attempts = max_attempts
        self._retry_delay = retry_delay
        self._max_retry_delay = max_retry_delay
        self.retry_at: dict[str, float] = {}
        """When each handler waiting out a failure is tried again (time.monotonic)."""

    def waiting(self, name: str, now: float) -> bool:
        return self.retry_at.get(name, 0.0) > now

    def next_retry(self, runnable: Callable[[str], bool]) -> float | None:
        """The next retry of a handler that could run then (one whose lease another
        process holds now, or that is busy, would only wake the reactor for nothing)."""
        return min((at for name, at in self.retry_at.items() if runnable(name)), default=None)

    def forget(self, name: str) -> None:
        """It was delivered to, retried or resumed: no retry is pending any more."""
        self.retry_at.pop(name, None)

    async def note(self, name: str, event: StoredEvent, error: BaseException) -> None:
        """Retry with backoff, then park: a broken handler must not hold up the others."""
        row = self._rows[name]
        failures = self._states.failures.get(row, 0) + 1
        self._states.failures[row] = failures
        logger.error(
            "reaction %s failed at position %d (%s), attempt %d of %d: %s: %s",
            name,
            event.position,
            event.event_type,
            failures,
            self._max_attempts,
            type(error).__name__,
            error,
        )
        if failures < self._max_attempts:
            delay = min(self._max_retry_delay, self._retry_delay * 2 ** (failures - 1))
            self.retry_at[name] = time.monotonic() + delay
            return
        self.retry_at.pop(name, None)
        reason = (
            f"{type(error).__name__}: {error} at position {event.position} ({event.event_type})"
        )
        logger.error("reaction %s is parked until `orderdesk reactions retry %s`", name, name)
        # Stored before it is known here, and not while the rows are being read: a look
        # that read the row before this write must not take it for a retry made elsewhere.
        async with self._settling:
            try:
                async with self._engine.begin() as connection:
                    await mark_parked(
                        connection,
                        row,
                        reason,
                        at=self._states.checkpoints[row],
                        leader=self._leases.me,
                    )
            except Exception:
                # Parked here all the same; the next look, finding it not parked there,
                # tries again.
                logger.exception("could not record that reaction %s is parked", name)
            self._states.parked[row] = reason
