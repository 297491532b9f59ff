"""Strawberry's two websocket subprotocol handlers, with what a long-lived public socket needs
and Strawberry does not give: server pings on graphql-transport-ws (proxies keep idle
sockets up; a client that stops answering is closed), an init timeout on the legacy
protocol too, and a bound on how long one send may wait for a client that stopped reading.

This module holds what the handlers (orderdesk/graphql_transport_ws.py,
orderdesk/legacy_graphql_ws.py) share beyond their sends (orderdesk/bounded_sends.py): the
limits they are held to (`SocketLimits`), the close codes, the checks on a client message's
shape, and the way to abort a connection.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from graphql import OperationType
from strawberry.asgi import ASGIWebSocketAdapter

from orderdesk.rate_limits import WEBSOCKET_RATE_LIMITED

ABORT = "orderdesk.abort_transport"
"""The ASGI scope key under which the view leaves a callable that aborts the connection."""

EXPIRED_CODE = 4403
"""The close code for a socket whose token expired: graphql-transport-ws's Forbidden."""

SUBSCRIPTION = OperationType.SUBSCRIPTION

TOO_MANY_CODE = WEBSOCKET_RATE_LIMITED
"""The close code for a socket over a rate limit or a cap on open sockets."""


@dataclass(frozen=True, slots=True)
class SocketLimits:
    init_timeout: float
    ping_interval: float
    pong_timeout: float
    send_timeout: float


MAX_OPERATION_ID = 128
"""Characters an operation id may take: clients number their operations."""

MAX_CLOSE_REASON = 123
"""Bytes a close frame's reason may take (RFC 6455); a longer one fails the close itself."""


def close_reason(reason: str) -> str:
    """`reason` cut to what a close frame carries, on a character boundary."""
    encoded = reason.encode()
    if len(encoded) <= MAX_CLOSE_REASON:
        return reason
    return encoded[: MAX_CLOSE_REASON - 3].decode(errors="ignore") + "..."


class BoundedCloseAdapter(ASGIWebSocketAdapter):
    """Strawberry's websocket adapter, with close reasons cut to fit: a syntax error's
    message, which quotes the client's document, may be any length."""

    async def close(self, code: int, reason: str) -> None:
        await super().close(code, close_reason(reason))


def malformed(message: object, *, start: str) -> str | None:
    """What is wrong with a client message's shape, or None.

    Strawberry trusts the shape of what it parsed: a `payload` that is a string, or a
    message that is a list, would raise deep inside it and drop the socket with no code.
    """
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return "Failed to parse message"
    identifier = message.get("id", "")
    if not isinstance(identifier, str) or len(identifier) > MAX_OPERATION_ID:
        # The socket keeps an id as long as its operation runs.
        return "Failed to parse message"
    if message["type"] != start:
        return None
    payload = message.get("payload")
    well_formed = (
        "id" in message
        and isinstance(payload, dict)
        and isinstance(payload.get("query"), str | None)
        and isinstance(payload.get("variables") or {}, dict)
        and isinstance(payload.get("operationName") or "", str)
        and isinstance(payload.get("extensions") or {}, dict)
        and isinstance(payload.get("documentId"), str | None)
        and names_a_document(payload)
    )
    return None if well_formed else "Failed to parse message"


def names_a_document(payload: Mapping[str, Any]) -> bool:
    """By text, or by a trusted document's id or a persisted query's hash instead of one
    (orderdesk/socket_documents.py finds the text)."""
    return (
        payload.get("query") is not None
        or payload.get("documentId") is not None
        or "persistedQuery" in (payload.get("extensions") or {})
    )


def find_transport_abort(send: Callable[..., Any]) -> Callable[[], None] | None:
    """The `abort` of the asyncio transport under an ASGI `send`, if it can be found.

    ASGI offers no way to drop a connection whose write buffer is full. uvicorn's `send` is
    a method of its protocol object, which holds the transport; Starlette wraps it in
    closures. This looks through a few levels of those; with another server it finds
    nothing and a stuck connection is only left by the app (its operations still end).
    """
    seen: set[int] = set()
    todo: list[tuple[object, int]] = [(send, 0)]
    while todo:
        candidate, depth = todo.pop()
        if id(candidate) in seen or depth > 5:
            continue
        seen.add(id(candidate))
        transport = getattr(getattr(candidate, "__self__", None), "transport", None)
        # By what it can do, not by its class: uvloop's transports (uvicorn's default loop)
        # are not asyncio.Transport subclasses.
        abort = getattr(transport, "abort", None)
        if callable(abort) and callable(getattr(transport, "is_closing", None)):
            return cast(Callable[[], None], abort)
        for cell in getattr(candidate, "__closure__", None) or ():
            with contextlib.suppress(ValueError):
                if callable(cell.cell_contents):
                    todo.append((cell.cell_contents, depth + 1))
    return None
