"""What every aggregate shares: an identity, a version, and the events not yet stored."""

from __future__ import annotations

from typing import ClassVar

from domain.errors import VersionConflict

MAX_ID_LENGTH = 64


def is_possible_id(text: str) -> bool:
    """Whether an aggregate could have this id. One from a client that could not names
    nothing, and is not looked up: PostgreSQL fails on NUL in text rather than find nothing.
    """
    return 0 < len(text) <= MAX_ID_LENGTH and "\x00" not in text


class Aggregate:
    """Each recorded event bumps the version by one, so the version is the event stream's length.

    The unit of work stores the pending events with stream versions
    `stored_version + 1 .. version`, and updates the row only where it still has
    `stored_version`, which is how a concurrent change is caught.
    """

    kind: ClassVar[str]

    def __init__(self, aggregate_id: str, version: int) -> None:
        self.id = aggregate_id
        self.version = version
        self.stored_version = version
        self.pending_events: list[object] = []

    def _record(self, event: object) -> None:
        self.version += 1
        self.pending_events.append(event)

    def check_version(self, expected: int | None) -> None:
        """Refuse if the caller decided on another version than the current one."""
        if expected is not None and expected != self.version:
            raise VersionConflict(self.kind, self.id, expected, self.version)

    def mark_stored(self) -> None:
        self.stored_version = self.version
        self.pending_events.clear()
