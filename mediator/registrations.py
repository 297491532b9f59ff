"""The frozen snapshot of what was registered, and how a message type finds its parts.

A ``Registry`` hands one of these to the ``Mediator`` it builds, so registering more after
``build()`` never changes a mediator already serving requests.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Scoped:
    """A behavior (or stream behavior) and the messages it wraps: instances of ``applies_to``."""

    behavior: Callable[..., Any]
    applies_to: type


@dataclass(frozen=True, slots=True)
class Subscription:
    notification_type: type
    handler: Callable[..., Any]
    name: str
    """How failures, ``describe()`` and ``publish(only=...)`` name the handler."""


@dataclass(frozen=True, slots=True)
class Recovery:
    """An exception handler: turns ``exception_type`` raised for ``applies_to`` into a result."""

    exception_type: type[Exception]
    handler: Callable[..., Any]
    applies_to: type


@dataclass(frozen=True, slots=True)
class Registrations:
    handlers: Mapping[type, Callable[..., Any]]
    subscriptions: tuple[Subscription, ...]
    streams: Mapping[type, Callable[..., Any]]
    behaviors: tuple[Scoped, ...]
    stream_behaviors: tuple[Scoped, ...]
    recoveries: tuple[Recovery, ...]

    def handler_for(self, message_type: type) -> Callable[..., Any] | None:
        """The handler of the most specific registered type in ``message_type``'s MRO."""
        return _most_specific(self.handlers, message_type)

    def stream_handler_for(self, message_type: type) -> Callable[..., Any] | None:
        return _most_specific(self.streams, message_type)

    def subscribers_for(self, notification_type: type) -> tuple[Subscription, ...]:
        """Every handler subscribed to the type or a base, once each, in subscription order."""
        found: list[Subscription] = []
        for subscription in self.subscriptions:
            if issubclass(notification_type, subscription.notification_type) and not any(
                subscription.handler is seen.handler for seen in found
            ):
                found.append(subscription)
        return tuple(found)

    def behaviors_for(self, message_type: type) -> tuple[Callable[..., Any], ...]:
        """The behaviors that wrap ``message_type``, outermost (first registered) first."""
        return tuple(s.behavior for s in self.behaviors if issubclass(message_type, s.applies_to))

    def stream_behaviors_for(self, message_type: type) -> tuple[Callable[..., Any], ...]:
        return tuple(
            s.behavior for s in self.stream_behaviors if issubclass(message_type, s.applies_to)
        )

    def recoveries_for(self, message_type: type) -> dict[type[Exception], Callable[..., Any]]:
        """Exception type → handler for ``message_type``.

        When one exception type has handlers for several scopes that all cover the message,
        the narrowest scope (the one nearest the message in its MRO) wins.
        """
        mro = message_type.__mro__
        chosen: dict[type[Exception], Recovery] = {}
        for recovery in self.recoveries:
            if not issubclass(message_type, recovery.applies_to):
                continue
            current = chosen.get(recovery.exception_type)
            if current is None or _mro_index(mro, recovery.applies_to) < _mro_index(
                mro, current.applies_to
            ):
                chosen[recovery.exception_type] = recovery
        return {exc_type: recovery.handler for exc_type, recovery in chosen.items()}


def _most_specific(
    table: Mapping[type, Callable[..., Any]], cls: type
) -> Callable[..., Any] | None:
    for base in cls.__mro__:
        handler = table.get(base)
        if handler is not None:
            return handler
    return None


def _mro_index(mro: tuple[type, ...], cls: type) -> int:
    # A virtual base (an ABC registered with .register) is not in the MRO: rank it last.
    return mro.index(cls) if cls in mro else len(mro)
