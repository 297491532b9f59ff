"""What every command returns."""

from __future__ import annotations

from dataclasses import dataclass


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
