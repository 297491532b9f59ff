"""Sends with a deadline, and what both websocket subprotocol handlers share about who holds
a socket and what runs on it: its caps on open sockets, its rate budget, its token's
expiry, each operation's own loaders.

Why the send bound: uvicorn stops accepting writes when a socket's buffer is full (the
client does not read), and a send then waits until the client reads again, possibly
forever. Each subscriber's queue is bounded, so memory is bounded either way, but the
connection and its tasks would stay. After `send_timeout` the connection is dropped: the
transport is aborted (close would wait for the full buffer to drain) and every operation
of the socket ends. The client reconnects and resumes with `after`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from starlette.websockets import WebSocketDisconnect, WebSocketState
from strawberry.http.exceptions import WebSocketDisconnected

from orderdesk.open_sockets import OpenSockets
from orderdesk.operation_limits import QueryTooLong, too_large
from orderdesk.rate_limits import client_address, refusal_reason
from orderdesk.websocket_protocols import ABORT, TOO_MANY_CODE, SocketLimits

logger = logging.getLogger("orderdesk.websocket")


def limits_of(view: object) -> SocketLimits:
    limits = getattr(view, "socket_limits", None)
    if not isinstance(limits, SocketLimits):
        raise TypeError("the view must have socket_limits for these websocket handlers")
    return limits


def start_operation(context: object) -> None:
    """Loaders of the operation's own: the connection's context outlives many operations."""
    start = getattr(context, "start_operation", None)
    if start is not None:
        start()


class BoundedSends:
    """Send with a deadline; a send that cannot finish drops the connection.

    A send that fails ends the task it runs in: the socket's own task (which then shuts
    the socket's operations down) with WebSocketDisconnected, an operation's task by
    being cancelled, quietly, as when the client unsubscribes.

    Also what both protocols share about who holds the socket: it counts against its
    address's and its caller's caps on open sockets, and it ends when the caller's token
    expires (checked again as each operation starts, so no operation slips in between).
    """

    websocket: Any
    view: Any
    context: Any
    limits: SocketLimits
    socket_task: asyncio.Task[Any] | None = None
    _address: str | None = None
    _expiry: asyncio.Task[None] | None = None

    @property
    def _open_sockets(self) -> OpenSockets:
        sockets: OpenSockets = self.view.open_sockets
        return sockets

    async def _admitted(self) -> bool:
        """Take the socket as this task's, counted against its address's cap; closed (and
        False) when the address is over it."""
        self.socket_task = asyncio.current_task()
        if not self._take_address():
            await self._close(TOO_MANY_CODE, "too many open websockets from this address")
            return False
        return True

    def _take_address(self) -> bool:
        address = client_address(self.websocket.ws.scope)
        if address is None:
            return True
        if not self._open_sockets.open_for_address(address):
            return False
        self._address = address
        return True

    def _give_back(self) -> None:
        if self._address is not None:
            self._open_sockets.close_for_address(self._address)
            self._address = None
        # The view counted the socket for its caller when it authenticated it.
        subject = getattr(self.context, "socket_subject", None)
        if subject is not None:
            self._open_sockets.close_for_identity(subject)
            self.context.socket_subject = None
        if self._expiry is not None:
            self._expiry.cancel()

    async def _over_budget(self) -> str | None:
        """Why this operation may not start, if the address or the caller has spent its
        rate budget: an operation over a socket spends what a request would, or opening one
        socket and subscribing in a loop would be a way around the limits."""
        limits = self.context.request.app.state.services.rate_limits
        if limits is None:
            return None
        wait = None
        if self._address is not None:
            wait = await limits.admit_address(self._address)
        subject = getattr(self.context, "socket_subject", None)
        if wait is None and subject is not None:
            wait = await limits.admit_identity(subject)
        return None if wait is None else refusal_reason(wait)

    def _held_back(self) -> dict[str, object] | None:
        """What the keep-alives say while subscribers are held back by a parked read model
        (a `ping` payload, a `ka` payload: clients that do not look ignore them)."""
        held = self.context.request.app.state.services.tail.held_back
        if held is None:
            return None
        return {
            "message": held.message,
            "extensions": {
                "code": "EVENTS_HELD_BACK",
                "projectionsParked": list(held.projections),
                "deliveredThrough": str(held.delivered_through),
            },
        }

    def _expired(self) -> bool:
        expires_at = getattr(self.context, "credential_expires_at", None)
        return expires_at is not None and time.time() >= expires_at

    def _watch_expiry(self) -> None:
        expires_at = getattr(self.context, "credential_expires_at", None)
        if expires_at is not None:
            self._expiry = asyncio.create_task(self._end_at(expires_at), name="token-expiry")

    async def _end_at(self, expires_at: float) -> None:
        await asyncio.sleep(max(0.0, expires_at - time.time()))
        await self._end_expired()

    async def _end_expired(self) -> None:
        raise NotImplementedError

    async def _close(self, code: int, reason: str) -> None:
        try:
            async with asyncio.timeout(self.limits.send_timeout):
                await self.websocket.close(code=code, reason=reason)
        except TimeoutError:
            self._abort()

    def _bounded_payload(self, message: Any) -> str:
        """The message as JSON; a result (`next`, `data`) too big has RESPONSE_TOO_LARGE for
        its payload instead. Other messages are the server's own and small."""
        text: str = json.dumps(message, separators=(",", ":"))
        limit = self.view.max_response_bytes
        if len(text) > limit and message.get("type") in ("next", "data"):
            return json.dumps({**message, "payload": too_large(len(text), limit)})
        return text

    def _too_long(self, message: object) -> QueryTooLong | None:
        payload = message.get("payload") if isinstance(message, dict) else None
        query = payload.get("query") if isinstance(payload, dict) else None
        limit: int = self.view.max_query_length
        if isinstance(query, str) and len(query) > limit:
            return QueryTooLong(limit)
        return None

    async def _bounded_send(self, send: Callable[[], Any]) -> None:
        try:
            async with asyncio.timeout(self.limits.send_timeout):
                await send()
        except TimeoutError:
            logger.warning(
                "dropping a websocket whose client has not read for %s s", self.limits.send_timeout
            )
            self._abort()
            raise self._gone() from None
        except (WebSocketDisconnected, WebSocketDisconnect, OSError):
            raise self._gone() from None
        except RuntimeError:
            # Starlette's word for a send after the close: the socket is gone all the same.
            if self.websocket.ws.application_state is not WebSocketState.DISCONNECTED:
                raise
            raise self._gone() from None

    def _abort(self) -> None:
        abort = self.websocket.ws.scope.get(ABORT)
        if abort is not None:
            abort()

    def _gone(self) -> BaseException:
        if asyncio.current_task() is self.socket_task:
            return WebSocketDisconnected()
        return asyncio.CancelledError()
