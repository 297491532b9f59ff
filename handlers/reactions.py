"""Reactions: what the service does because something happened.

The reactor (persistence/reactor.py) follows the event log and hands each committed event
to `Reactions.deliver`, which publishes it through the mediator as a `Committed`
notification to the handlers subscribed to its type that have not had it yet: each handler
keeps its own checkpoint. A feature subscribes its handlers in its `register`:

    registry.subscribe(committed(OrderPlaced), email_confirmation, name="orders.confirmation_email")

Delivery is at least once: a handler may get an event again after a crash, so whatever it
does is keyed by `effect_key` (its name and the event's id) and done once per key. A
handler that changes state sends an ordinary command with `send_command`, as the system
and caused by the event, so the domain's rules hold for it too and `orderdesk trace`
follows it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar, cast

from handlers.access import Identity, Role
from handlers.transaction import CAUSED_BY
from mediator import (
    HANDLER_NAME,
    ConfigurationError,
    Context,
    ContextKey,
    Mediator,
    Notification,
    PublishError,
)
from mediator.messages import Request
from persistence.event_log import StoredEvent

E = TypeVar("E")
E_co = TypeVar("E_co", covariant=True)
R = TypeVar("R")

HANDLER_NAMES = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
"""What a reaction handler's name looks like ("orders.confirmation_email"); its length is
bounded apart, by the checkpoint row's name."""
SYSTEM = Identity("orderdesk", Role.SYSTEM)
"""Who a reaction's commands come from."""


@dataclass(frozen=True, slots=True)
class Committed(Notification, Generic[E_co]):
    """A domain event the log holds, as its reaction handlers get it."""

    event: E_co
    event_id: str
    """Unique and stable: with the handler's name, the key of whatever the handler does."""
    position: int
    stream_type: str
    stream_id: str
    stream_version: int
    """The aggregate's version once this event was applied (an order's expected version)."""
    occurred_at: datetime
    correlation_id: str
    """The id of the request that caused it, which the handler's own writes carry on."""
    causation_id: str | None = None
    """The event a reaction was handling when it wrote this one; None for a request's own."""


_NOTIFICATIONS: dict[type, type[Committed[Any]]] = {}


def committed(event_type: type[E]) -> type[Committed[E]]:
    """The notification type of one event type: what a handler of it subscribes to.

    One subclass per event type, so that the mediator routes each event type to its own
    handlers by the notification's class; made once and kept.
    """
    notification = _NOTIFICATIONS.get(event_type)
    if notification is None:
        name = f"{event_type.__name__}Committed"
        notification = cast(
            type[Committed[Any]],
            type(name, (Committed,), {"__slots__": (), "__qualname__": name}),
        )
        _NOTIFICATIONS[event_type] = notification
    return notification


def effect_key(notification: Committed[Any], ctx: Context) -> str:
    """What a handler's effect outside the database is known by: its name and the event's
    id, the same at every redelivery and different for every other handler and event."""
    return f"{ctx.get(HANDLER_NAME)}:{notification.event_id}"


_SENDER = ContextKey[Mediator]("reaction sender")


async def send_command(ctx: Context, command: Request[R]) -> R:
    """Send `command` as the system, for the event the handler is reacting to: its events
    record that event as their cause, and the original request's correlation id."""
    mediator = ctx.get(_SENDER)
    own = Context(correlation_id=ctx.correlation_id, identity=SYSTEM)
    caused_by = ctx.find(CAUSED_BY)
    if caused_by is not None:
        own.set(CAUSED_BY, caused_by)
    return await mediator.send(command, own)


class Reactions:
    """The mediator's subscribers, as the reactor sees them: which handler takes which event
    types, and delivery of one stored event to some of them."""

    def __init__(self, mediator: Mediator, event_types: Sequence[type]) -> None:
        self._mediator = mediator
        self._types = {event_type.__name__: event_type for event_type in event_types}
        takes: dict[str, set[str]] = {}
        for name, event_type in self._types.items():
            for handler in mediator.subscribers(committed(event_type)):
                if not HANDLER_NAMES.fullmatch(handler) or len(handler) > 60:
                    # Its name is its checkpoint's: a name made up from the function (two
                    # partials of one function share it) would mix two handlers' progress.
                    raise ConfigurationError(
                        f"the reaction handler {handler!r} needs a name of its own, "
                        '"<feature>.<what it does>" in at most 60 characters: '
                        "registry.subscribe(..., name=...)"
                    )
                takes.setdefault(handler, set()).add(name)
        self.takes: Mapping[str, frozenset[str]] = {
            handler: frozenset(types) for handler, types in sorted(takes.items())
        }
        """Each handler's name, and the names of the event types it is subscribed to."""

    async def deliver(self, stored: StoredEvent, to: Collection[str]) -> dict[str, BaseException]:
        """Publish `stored` to the handlers named `to`; returns those that failed, by name."""
        event_type = self._types.get(stored.event_type)
        if event_type is None or not to:
            return {}
        notification: Committed[Any] = committed(event_type)(
            cast(Any, stored.event),
            stored.event_id,
            stored.position,
            stored.stream_type,
            stored.stream_id,
            stored.stream_version,
            stored.occurred_at,
            stored.correlation_id,
            stored.causation_id,
        )
        ctx = Context(correlation_id=stored.correlation_id, identity=SYSTEM)
        ctx.set(_SENDER, self._mediator)
        ctx.set(CAUSED_BY, stored.event_id)
        try:
            await self._mediator.publish(notification, ctx, only=to)
        except PublishError as error:
            return dict(error.failures)
        return {}
