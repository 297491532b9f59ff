"""The unit of work: the one transaction boundary for writes.

It commits the changed aggregates and their new events, in the event log, in one
transaction (a transactional outbox): no event is published that was not committed, and
none that was committed is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from persistence.event_log import EventLog, NewEvent
from persistence.products import ProductRepository, SqlProductRepository
from persistence.repository import SqlRepository


class UnitOfWork(Protocol):
    """What a command handler sees: repositories, and commit. Leaving without commit undoes all."""

    @property
    def products(self) -> ProductRepository: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> int:
        """Store every change and its events; returns the last event's log position."""
        ...


UnitOfWorkFactory = Callable[[str], UnitOfWork]
"""Makes a unit of work whose events carry the given correlation id."""


class SqlUnitOfWork:
    def __init__(
        self,
        engine: AsyncEngine,
        log: EventLog,
        *,
        clock: Callable[[], datetime],
        correlation_id: str,
        on_commit: Callable[[int], None],
    ) -> None:
        self._engine = engine
        self._log = log
        self._clock = clock
        self._correlation_id = correlation_id
        self._on_commit = on_commit
        self._connection: AsyncConnection | None = None

    async def __aenter__(self) -> Self:
        self._connection = await self._engine.connect()
        await self._connection.begin()
        product_repository = SqlProductRepository(self._connection)
        self.products: ProductRepository = product_repository
        self._repositories: list[SqlRepository[Any]] = [product_repository]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        connection = self._require_connection()
        try:
            if connection.in_transaction():
                await connection.rollback()
        finally:
            await connection.close()
            self._connection = None

    async def commit(self) -> int:
        connection = self._require_connection()
        changed = [(r, a) for r in self._repositories for a in r.seen() if a.pending_events]
        new_events: list[NewEvent] = []
        for repository, aggregate in changed:
            await repository.save(aggregate)
            first = aggregate.stored_version + 1
            new_events.extend(
                NewEvent(aggregate.kind, aggregate.id, first + i, event)
                for i, event in enumerate(aggregate.pending_events)
            )
        position = await self._log.append(
            connection, new_events, occurred_at=self._clock(), correlation_id=self._correlation_id
        )
        await connection.commit()
        for _, aggregate in changed:
            aggregate.mark_stored()
        if position:
            self._on_commit(position)
        return position

    def _require_connection(self) -> AsyncConnection:
        if self._connection is None:
            raise RuntimeError("use the unit of work inside `async with`")
        return self._connection
