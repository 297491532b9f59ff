"""What ``Mediator.describe()`` reports: one route per registered message type."""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from mediator.names import qualified_name
from mediator.registrations import Registrations

Kind = Literal["request", "notification", "stream"]


@dataclass(frozen=True, slots=True)
class Route:
    """A registered message type and everything that runs when it is sent, published or
    streamed; every name is ``module.QualName``."""

    message_type: type
    kind: Kind
    handlers: tuple[str, ...]
    behaviors: tuple[str, ...]
    """Outermost first; for a notification they wrap each handler separately."""
    exception_handlers: tuple[str, ...]
    """``ExceptionType -> handler``, for requests only."""


def describe(registrations: Registrations) -> list[Route]:
    """Every registered message type, requests first, then notifications, then streams."""
    routes: list[Route] = []
    for message_type in _by_name(registrations.handlers):
        handler = registrations.handlers[message_type]
        recoveries = registrations.recoveries_for(message_type)
        routes.append(
            Route(
                message_type=message_type,
                kind="request",
                handlers=(qualified_name(handler),),
                behaviors=_names(registrations.behaviors_for(message_type)),
                exception_handlers=tuple(
                    f"{qualified_name(exc_type)} -> {qualified_name(recovery)}"
                    for exc_type, recovery in recoveries.items()
                ),
            )
        )
    notification_types = {s.notification_type: None for s in registrations.subscriptions}
    for message_type in _by_name(notification_types):
        routes.append(
            Route(
                message_type=message_type,
                kind="notification",
                handlers=tuple(s.name for s in registrations.subscribers_for(message_type)),
                behaviors=_names(registrations.behaviors_for(message_type)),
                exception_handlers=(),
            )
        )
    for message_type in _by_name(registrations.streams):
        routes.append(
            Route(
                message_type=message_type,
                kind="stream",
                handlers=(qualified_name(registrations.streams[message_type]),),
                behaviors=_names(registrations.stream_behaviors_for(message_type)),
                exception_handlers=(),
            )
        )
    return routes


def describe_text(routes: list[Route]) -> str:
    """A fixed-width table, one line per handler, behavior and exception handler."""
    rows: list[tuple[str, str, str, str]] = []
    for route in routes:
        parts = (
            [("handler", name) for name in route.handlers]
            + [("behavior", name) for name in route.behaviors]
            + [("on error", name) for name in route.exception_handlers]
        ) or [("handler", "(none)")]
        for index, (role, name) in enumerate(parts):
            first = index == 0
            kind = route.kind if first else ""
            message = qualified_name(route.message_type) if first else ""
            rows.append((kind, message, role, name))
    header = ("KIND", "MESSAGE", "ROLE", "NAME (behaviors outermost first)")
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(3)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
        + "  "
        + row[3]
        for row in [header, *rows]
    ]
    return "\n".join(lines) + "\n"


def _by_name(types: Iterable[type]) -> list[type]:
    return sorted(types, key=qualified_name)


def _names(callables: tuple[object, ...]) -> tuple[str, ...]:
    return tuple(qualified_name(c) for c in callables)
