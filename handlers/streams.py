"""What a subscription's stream may end with, besides its events: the errors the schema
turns into GraphQL errors for the subscriber."""

from __future__ import annotations

from persistence.tail_events import PositionNotReached, ReplayTooLong, SubscriberTooSlow

__all__ = ["PositionNotReached", "ReplayTooLong", "SubscriberTooSlow"]
