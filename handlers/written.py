"""What every command returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class _Versioned(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def version(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Written:
    """The entity a command changed, its new version, and its last event's log position.

    The position is the command's consistency token: the pipeline waits until the read
    models have passed it, so the mutation's payload shows the caller's own write.
    """

    entity_id: str
    version: int
    position: int = 0
    """Filled in by the transaction behavior once the commit has a position."""
    kind: str | None = None
    """The entity's type (`Product`, `Order`, `Customer`): what its global id names."""

    @classmethod
    def of(cls, entity: _Versioned) -> Written:
        """What a command wrote to `entity`, an aggregate just saved."""
        return cls(entity.id, entity.version, kind=type(entity).__name__)
