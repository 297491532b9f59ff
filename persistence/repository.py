"""What every SQL repository shares: the aggregates it handed out in this unit of work."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from domain.aggregate import Aggregate

A = TypeVar("A", bound=Aggregate)


class SqlRepository(ABC, Generic[A]):
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
