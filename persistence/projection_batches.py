"""One batch of events applied to one projection, by the process that holds its lease.

The projection's rows and its checkpoint change in one transaction, and the checkpoint
advances only from the position the batch started at, and only for the lease's holder
(compare and set): a batch that finds either moved is not applied, whatever the timing. A
batch that fails is retried with backoff, then its projection is parked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from opentelemetry.trace import Tracer
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from persistence.checkpoints import ADVANCE, LOCK, checkpoint_rows, mark_parked
from persistence.event_log import StoredEvent
from persistence.projection_leases import Leases
from persistence.projection_states import ProjectionStates

logger = logging.getLogger("orderdesk.projector")

Apply = Callable[[AsyncConnection, StoredEvent], Awaitable[None]]

CORRELATION_IDS_SHOWN = 20
"""The most correlation ids a batch's span names; a batch of many requests' events names
the first ones, with the count beside them."""


class _CheckpointMoved(Exception):
    """Another process advanced the projection first, or took its lease: this batch must
    not be applied twice."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProjectionBatches:
    """Applies the batches of the projections this process leads, for `Projector`."""

    engine: AsyncEngine
    checkpoint_engine: AsyncEngine
    leases: Leases
    states: ProjectionStates
    max_attempts: int
    retry_delay: float
    tracer: Tracer | None = None
    """Each batch is a span when tracing is on (orderdesk/tracing.py); None costs nothing."""

    async def apply(self, name: str, apply: Apply, events: list[StoredEvent]) -> None:
        """Apply to projection `name` those of `events` past its checkpoint."""
        checkpoint = self.states.checkpoints[name]
        todo = [event for event in events if event.position > checkpoint]
        if not todo:
            return
        if self.tracer is None:
            await self._apply(name, apply, checkpoint, todo)
            return
        # Not under the request's span (the projector has its own task), but tied to the
        # requests whose events it applies by their correlation ids.
        correlation_ids = list(dict.fromkeys(event.correlation_id for event in todo))
        attributes: dict[str, str | int | list[str]] = {
            "orderdesk.projection": name,
            "orderdesk.batch.events": len(todo),
            "orderdesk.batch.first_position": todo[0].position,
            "orderdesk.batch.last_position": todo[-1].position,
            "orderdesk.correlation_ids": correlation_ids[:CORRELATION_IDS_SHOWN],
            "orderdesk.correlation_id_count": len(correlation_ids),
        }
        if len(correlation_ids) == 1:
            attributes["orderdesk.correlation_id"] = correlation_ids[0]
        with self.tracer.start_as_current_span(
            f"projection batch {name}", attributes=attributes
        ) as span:
            outcome = await self._apply(name, apply, checkpoint, todo)
            span.set_attribute("orderdesk.outcome", outcome)

    async def _apply(
        self, name: str, apply: Apply, checkpoint: int, todo: list[StoredEvent]
    ) -> str:
        """Apply `todo`, from `checkpoint`: `applied`, `skipped` (another process or a rebuild
        moved the checkpoint first) or `failed` (retried, or parked)."""
        me = self.leases.me
        try:
            async with self.engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    # The checkpoint's row lock before any read-model row: whoever else
                    # touches this projection (a rebuild, a holder that lost its lease and
                    # has not noticed) waits here, instead of locking rows in another order.
                    # (SQLite's writers take turns anyway.)
                    locked = (await connection.execute(LOCK, {"b_name": name})).one()
                    if (int(locked.position), locked.leader) != (checkpoint, me):
                        raise _CheckpointMoved
                for event in todo:
                    await apply(connection, event)
                moved = await connection.execute(
                    ADVANCE,
                    {
                        "b_name": name,
                        "b_from": checkpoint,
                        "b_leader": me,
                        "position": todo[-1].position,
                    },
                )
                if moved.rowcount != 1:
                    raise _CheckpointMoved
        except _CheckpointMoved:
            await self._reload_checkpoint(name)
            return "skipped"
        except Exception as error:
            # A rebuild may have taken the lease and emptied the tables under this batch:
            # a lost race, not a broken projection.
            await self._reload_checkpoint(name)
            if self.states.checkpoints[name] != checkpoint or not self.leases.holds(name):
                return "skipped"
            await self._failed(name, todo[0], error)
            return "failed"
        self.states.checkpoints[name] = todo[-1].position
        self.states.failures.pop(name, None)
        return "applied"

    async def _failed(self, name: str, event: StoredEvent, error: Exception) -> None:
        """Retry with backoff, then park: a broken projection must not stop the others or writes."""
        failures = self.states.failures.get(name, 0) + 1
        self.states.failures[name] = failures
        logger.error(
            "projection %s failed at position %d (%s), attempt %d of %d",
            name,
            event.position,
            event.event_type,
            failures,
            self.max_attempts,
            exc_info=error,
        )
        if failures >= self.max_attempts:
            reason = f"{type(error).__name__}: {error} at position {event.position}"
            self.states.parked[name] = reason
            logger.error(
                "projection %s is parked until `orderdesk projections retry %s` or a rebuild",
                name,
                name,
            )
            await self._store_parked(name, reason, at=self.states.checkpoints[name])
            return
        await asyncio.sleep(self.retry_delay * 2 ** (failures - 1))

    async def _store_parked(self, name: str, reason: str, *, at: int) -> None:
        """Record the parked error where every process and `projections status` see it;
        unless a rebuild (or another process) has taken the projection over meanwhile."""
        try:
            async with self.engine.begin() as connection:
                await mark_parked(connection, name, reason, at=at, leader=self.leases.me)
        except Exception:
            # Parked here all the same; the next look at the checkpoints, finding it not
            # parked there, tries it again.
            logger.exception("could not record that projection %s is parked", name)

    async def _reload_checkpoint(self, name: str) -> None:
        async with self.checkpoint_engine.connect() as connection:
            self.states.take(await checkpoint_rows(connection, name))
