"""What the event tail (persistence/event_tail.py) hands a subscriber, and why a subscription
ends or waits: the events with their entity's view, and the refusals a client is told of."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from persistence.event_log import StoredEvent


@dataclass(frozen=True, slots=True)
class TailEvent:
    """A committed event with the entity as the read model showed it when the tail read it."""

    stored: StoredEvent
    view: object | None

    @property
    def position(self) -> int:
        return self.stored.position


ViewLoader = Callable[[AsyncConnection, Sequence[str]], Awaitable[Mapping[str, object]]]
"""Reads the read-model views of the given stream ids in one statement."""

Filter = Callable[[TailEvent], bool]


class SubscriberTooSlow(Exception):
    """A subscriber fell a whole queue behind; it is cut off and may resume from its cursor.

    `resume_after` is the position to pass as `after` to miss nothing.
    """

    def __init__(self, message: str, *, resume_after: int) -> None:
        super().__init__(message)
        self.resume_after = resume_after


class ReplayTooLong(Exception):
    """`after` is further behind the tail than one subscription may replay.

    "Behind" counts log positions (the tail's position minus `after`), not the events the
    subscription's filter would match: that is known without reading the log, and it bounds
    the events a replay reads whatever the filter (positions have gaps, never repeats).
    Counting matches instead would cost the very scan the cap is there to refuse.
    """

    def __init__(self, message: str, *, max_replay_events: int, behind: int) -> None:
        super().__init__(message)
        self.max_replay_events = max_replay_events
        self.behind = behind


class PositionNotReached(Exception):
    """`after` names a position the log has not reached: it came from no event."""


@dataclass(frozen=True, slots=True)
class HeldBack:
    """Subscribers get nothing past `delivered_through` while `projections` are parked:
    an event is delivered with its entity's view, and theirs would be missing or old."""

    projections: tuple[str, ...]
    delivered_through: int

    @property
    def message(self) -> str:
        return (
            f"events after position {self.delivered_through} are held back until the "
            f"{', '.join(self.projections)} read model is running again; they will all be "
            "delivered then, in order"
        )
