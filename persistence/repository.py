"""What every SQL repository shares: the aggregates it handed out in this unit of work."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import Table, Update, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.aggregate import Aggregate
from domain.errors import VersionConflict

A = TypeVar("A", bound=Aggregate)


def versioned_update(table: Table) -> Update:
    """UPDATE of one row at the version it was read at; the new values come as parameters.

    Built once per table: a statement built per call costs more than SQLite's work.
    """
    return update(table).where(
        table.c.id == bindparam("b_id"), table.c.version == bindparam("b_stored_version")
    )


class SqlRepository(ABC, Generic[A]):
    table: ClassVar[Table]
    updating: ClassVar[Update]

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection
        self._seen: dict[str, A] = {}

    def seen(self) -> Iterable[A]:
        return self._seen.values()

    def _track(self, aggregate: A) -> A:
        return self._seen.setdefault(aggregate.id, aggregate)

    def add(self, aggregate: A) -> None:
        self._track(aggregate)

    @property
    def _locks_rows(self) -> bool:
        """PostgreSQL locks the rows a write transaction reads (SQLite locked the whole file)."""
        return self._connection.dialect.name == "postgresql"

    @abstractmethod
    async def save(self, aggregate: A) -> None:
        """Insert or update the aggregate's row, refusing if its version moved meanwhile."""

    async def _update(self, aggregate: A, values: dict[str, Any]) -> None:
        """Update the row only where it still has the version the aggregate was loaded at.

        On PostgreSQL the row was locked when read, so this is a second line of defence;
        it is what catches a writer that did not lock.
        """
        id_column = self.table.c.id
        result = await self._connection.execute(
            self.updating,
            {
                "b_id": aggregate.id,
                "b_stored_version": aggregate.stored_version,
                "version": aggregate.version,
                **values,
            },
        )
        if result.rowcount == 0:
            actual = await self._connection.scalar(
                select(self.table.c.version).where(id_column == aggregate.id)
            )
            raise VersionConflict(
                aggregate.kind, aggregate.id, aggregate.stored_version, actual or 0
            )
