"""Strawberry's two websocket subprotocol handlers, with what a long-lived public socket needs
and Strawberry does not give: server pings on graphql-transport-ws (proxies keep idle
sockets up; a client that stops answering is closed), an init timeout on the legacy
protocol too, and a bound on how long one send may wait for a client that stopped reading.

Why the send bound: uvicorn stops accepting writes when a socket's buffer is full (the
client does not read), and a send then waits until the client reads again, possibly
forever. Each subscriber's queue is bounded, so memory is bounded either way, but the
connection and its tasks would stay. After `send_timeout` the connection is dropped: the
transport is aborted (close would wait for the full buffer to drain) and every operation
of the socket ends. The client reconnects and resumes with `after`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from graphql import GraphQLError, GraphQLSyntaxError, OperationType, get_operation_ast
from starlette.websockets import WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    Message,
    PongMessage,
    SubscribeMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import (
    ConnectionInitMessage as LegacyConnectionInitMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.types import (
    ErrorMessage,
    OperationMessage,
    StartMessage,
    StopMessage,
)

from handlers.rate_limit import RateLimited
from orderdesk.open_sockets import OpenSockets
from orderdesk.operation_limits import (
    QueryTooLong,
    TooManySockets,
    operation_type,
    timed_out,
    too_large,
)
from orderdesk.rate_limits import WEBSOCKET_RATE_LIMITED, client_address, refusal_reason
from orderdesk.shared_subscriptions import Frame, SharedSubscriptions

logger = logging.getLogger("orderdesk.websocket")

ABORT = "orderdesk.abort_transport"
"""The ASGI scope key under which the view leaves a callable that aborts the connection."""

PONG_TIMEOUT_CODE = 1011
"""The close code for a client that did not answer a ping (as the websockets library uses)."""

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


def _limits_of(view: object) -> SocketLimits:
    limits = getattr(view, "socket_limits", None)
    if not isinstance(limits, SocketLimits):
        raise TypeError("the view must have socket_limits for these websocket handlers")
    return limits


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
        and isinstance(payload.get("query"), str)
        and isinstance(payload.get("variables") or {}, dict)
        and isinstance(payload.get("operationName") or "", str)
    )
    return None if well_formed else "Failed to parse message"


def _start_operation(context: object) -> None:
    """Loaders of the operation's own: the connection's context outlives many operations."""
    start = getattr(context, "start_operation", None)
    if start is not None:
        start()


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
        if isinstance(transport, asyncio.Transport):
            return transport.abort
        for cell in getattr(candidate, "__closure__", None) or ():
            with contextlib.suppress(ValueError):
                if callable(cell.cell_contents):
                    todo.append((cell.cell_contents, depth + 1))
    return None


class _BoundedSends:
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


class GraphQLTransportWSHandler(_BoundedSends, BaseGraphQLTransportWSHandler[Any, Any]):
    """graphql-transport-ws with server pings: `ping` every `ping_interval` seconds once the
    connection is acknowledged; no `pong` within `pong_timeout` closes the socket (1011)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = _limits_of(self.view)
        self._pinger: asyncio.Task[None] | None = None
        self._pong = asyncio.Event()
        self._one_shot: set[str] = set()

    async def handle(self) -> None:
        self.socket_task = asyncio.current_task()
        if not self._take_address():
            await self._close(TOO_MANY_CODE, "too many open websockets from this address")
            return
        try:
            await super().handle()
        finally:
            self._give_back()
            if self._pinger is not None:
                self._pinger.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._pinger

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        try:
            await super().handle_connection_init(message)
        except (RateLimited, TooManySockets) as refused:
            await self._close(TOO_MANY_CODE, str(refused))
            return
        if self.connection_acknowledged and self._pinger is None:
            self._watch_expiry()
            self._pinger = asyncio.create_task(self._ping(), name="graphql-transport-ws-ping")

    async def _end_expired(self) -> None:
        await self._close(EXPIRED_CODE, "the bearer token has expired")

    async def handle_pong(self, message: PongMessage) -> None:
        self._pong.set()

    async def handle_message(self, message: Message) -> None:
        if (problem := malformed(message, start="subscribe")) is not None:
            await self.handle_invalid_message(problem)
            return
        await super().handle_message(message)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        # A syntax error must close the socket with 4400 and the error (the protocol's
        # rule). Strawberry does that only when parsing happens outside extensions; with
        # our parse hook (schema/documents.py), the error escapes the operation and the
        # client gets a bare complete.
        if self.connection_acknowledged and self._expired():
            await self._end_expired()
            return
        if self.connection_acknowledged and (refusal := await self._over_budget()):
            await self._close(TOO_MANY_CODE, refusal)
            return
        if self.connection_acknowledged and message["id"] not in self.operations:
            if (too_long := self._too_long(message)) is not None:
                error_message: Any = {
                    "id": message["id"],
                    "type": "error",
                    "payload": [too_long.as_graphql().formatted],
                }
                await self.send_message(error_message)
                return
            query = message["payload"]["query"]
            try:
                # The schema's parse: bounded by the token limit, and cached for execution.
                document = self.view.parse(query)
            except GraphQLSyntaxError as error:
                await self.handle_invalid_message(error.message)
                return
            operation = get_operation_ast(document, message["payload"].get("operationName"))
            if operation is not None and operation.operation is not SUBSCRIPTION:
                self._one_shot.add(message["id"])
            await super().handle_subscribe(message)
            if message["id"] not in self.operations:
                # Refused (over the subscriptions cap) or already over: a later operation
                # under this id must not inherit the mark.
                self._one_shot.discard(message["id"])
            elif message["id"] not in self._one_shot and (held := self._held_back()):
                # Said at once, not at the next ping: the subscription starts held back.
                await self.send_message({"type": "ping", "payload": held})
            return
        await super().handle_subscribe(message)

    async def send_message(self, message: Message) -> None:
        text = self._bounded_payload(message)
        await self._bounded_send(lambda: self.websocket.ws.send_text(text))

    async def run_operation(self, operation: Operation[Any, Any]) -> None:
        if operation.id in self._one_shot:
            # A query or mutation over the socket has the HTTP request's deadline.
            self._one_shot.discard(operation.id)
            try:
                await self.view.deadlines.run(self._run_operation(operation))
            except TimeoutError:
                await operation.send_next(timed_out(self.view.execution_timeout))
                await operation.send_operation_message({"id": operation.id, "type": "complete"})
            return
        await self._run_operation(operation)

    async def _run_operation(self, operation: Operation[Any, Any]) -> None:
        _start_operation(self.context)
        shared: SharedSubscriptions | None = getattr(self.view, "shared_subscriptions", None)
        ctx = getattr(self.context, "ctx", None)
        key = None
        if shared is not None and ctx is not None:
            key = shared.key(
                operation.query, operation.variables, operation.operation_name, ctx.identity
            )
        if shared is None or key is None:
            await super().run_operation(operation)
            return

        async def start() -> Any:
            _start_operation(self.context)  # in the group's own task
            return await self.schema.stream(
                operation.query,
                variable_values=operation.variables,
                context_value=self.context,
                root_value=self.root_value,
                operation_name=operation.operation_name,
            )

        await shared.follow(
            key,
            start,
            lambda frame: self._send_frame(operation, frame),
            lambda position: self._cut_off(operation, shared.queue_size, position),
        )

    async def _send_frame(self, operation: Operation[Any, Any], frame: Frame) -> None:
        if frame.kind == "next":
            # The payload is encoded once for the whole group; only the id is this socket's.
            payload = frame.payload
            if len(payload) > self.view.max_response_bytes:
                payload = json.dumps(too_large(len(payload), self.view.max_response_bytes))
            text = f'{{"id":{json.dumps(operation.id)},"type":"next","payload":{payload}}}'
            await self._bounded_send(lambda: self.websocket.ws.send_text(text))
        elif frame.kind == "error":
            await operation.send_operation_message(
                {"id": operation.id, "type": "error", "payload": json.loads(frame.payload)}
            )
        else:
            await operation.send_operation_message({"id": operation.id, "type": "complete"})

    async def _cut_off(
        self, operation: Operation[Any, Any], queue_size: int, position: str | None
    ) -> None:
        resume = f'resume with after: "{position}"' if position else "resume with after"
        extensions: dict[str, object] = {"code": "SUBSCRIBER_TOO_SLOW"}
        if position:
            extensions["resumeAfter"] = position
        error = GraphQLError(
            f"the subscriber fell {queue_size} events behind and was disconnected; {resume}",
            extensions=extensions,
        )
        await operation.send_operation_message(
            {
                "id": operation.id,
                "type": "next",
                "payload": {"data": None, "errors": [error.formatted]},
            }
        )
        await operation.send_operation_message({"id": operation.id, "type": "complete"})

    async def _ping(self) -> None:
        while True:
            await asyncio.sleep(self.limits.ping_interval)
            self._pong.clear()
            ping: Any = {"type": "ping"}
            if self.operations and (held := self._held_back()):
                ping["payload"] = held
            await self.send_message(ping)
            try:
                async with asyncio.timeout(self.limits.pong_timeout):
                    await self._pong.wait()
            except TimeoutError:
                reason = f"no pong within {self.limits.pong_timeout:g} s of a ping"
                await self._close(PONG_TIMEOUT_CODE, reason)
                return


class GraphQLWSHandler(_BoundedSends, BaseGraphQLWSHandler[Any, Any]):
    """The legacy graphql-ws (subscriptions-transport-ws) protocol, with the same bounded
    sends and an init timeout (4408): an unauthenticated socket must not idle forever.

    Its other rules are the legacy protocol's own, which GraphQL Playground expects: a
    second `start` with a live id replaces that operation, unparsable messages are ignored,
    keep-alives are `ka` messages that need no answer.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = _limits_of(self.view)
        self._init_timeout: asyncio.Task[None] | None = None
        self._completed: set[str] = set()
        self._stopping: set[str] = set()

    async def handle(self) -> None:
        self.socket_task = asyncio.current_task()
        if not self._take_address():
            await self._close(TOO_MANY_CODE, "too many open websockets from this address")
            return
        self._init_timeout = asyncio.create_task(self._close_unless_initialised())
        try:
            await super().handle()
        finally:
            self._give_back()
            self._init_timeout.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._init_timeout

    async def handle_connection_init(self, message: LegacyConnectionInitMessage) -> None:
        if self.connection_acknowledged:
            # Strawberry's legacy handler would take it again: another identity for the
            # socket, another count against the caller's cap, another keep-alive loop.
            await self._refuse(TOO_MANY_CODE, "Too many initialisation requests")
            return
        if self._init_timeout is not None:
            self._init_timeout.cancel()
        try:
            await super().handle_connection_init(message)
        except (RateLimited, TooManySockets) as refused:
            await self._refuse(TOO_MANY_CODE, str(refused))
            return
        if self.connection_acknowledged:
            self._watch_expiry()

    async def _end_expired(self) -> None:
        await self._refuse(EXPIRED_CODE, "the bearer token has expired")

    async def _refuse(self, code: int, reason: str) -> None:
        # The legacy protocol tells why in a message; its clients show that, not the code.
        try:
            await self.send_message({"type": "connection_error", "payload": {"message": reason}})
        except asyncio.CancelledError:
            # A send that failed ends a task by cancelling it; a real cancel goes on.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
        except Exception:  # the close below is what matters
            logger.debug("could not tell a refused websocket why", exc_info=True)
        await self._close(code, reason)

    async def handle_message(self, message: OperationMessage) -> None:
        # The legacy protocol has no close code for a bad message; it answers `error`.
        if (problem := malformed(message, start="start")) is not None:
            identifier = message.get("id") if isinstance(message, dict) else None
            await self.send_message(
                ErrorMessage(
                    type="error",
                    id=identifier if isinstance(identifier, str) else "",
                    payload={"message": problem},
                )
            )
            return
        await super().handle_message(message)

    async def send_message(self, message: OperationMessage) -> None:
        if message["type"] == "ka" and self.tasks and (held := self._held_back()):
            message = cast(OperationMessage, {"type": "ka", "payload": held})
        text = self._bounded_payload(message)
        await self._bounded_send(lambda: self.websocket.ws.send_text(text))
        if message["type"] == "complete":
            self._completed.add(message["id"])

    async def handle_start(self, message: StartMessage) -> None:
        if self._expired():
            await self._end_expired()
            return
        if refusal := await self._over_budget():
            await self._refuse(TOO_MANY_CODE, refusal)
            return
        if (too_long := self._too_long(message)) is not None:
            await self.send_message(
                ErrorMessage(
                    type="error", id=message["id"], payload=too_long.as_graphql().formatted
                )
            )
            return
        self._completed.discard(message["id"])
        await super().handle_start(message)
        if message["id"] in self.tasks and (held := self._held_back()):
            await self.send_message(cast(OperationMessage, {"type": "ka", "payload": held}))

    async def handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        _start_operation(self.context)
        kind = operation_type(self.view.parse, query, operation_name)
        try:
            if kind is not None and kind is not SUBSCRIPTION:
                await self._execute(operation_id, query, operation_name, variables)
            else:
                await super().handle_async_results(operation_id, query, operation_name, variables)
        finally:
            # What a stop being handled still needs to know; otherwise the set would keep
            # every id the socket ever completed.
            if operation_id not in self._stopping:
                self._completed.discard(operation_id)

    async def _execute(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        """A query or mutation: the legacy protocol carries them as one `data` and a
        `complete` (Strawberry's handler expects only subscriptions), within the deadline."""
        try:
            result = await self.view.deadlines.run(
                self.schema.execute(
                    query,
                    variable_values=variables,
                    context_value=self.context,
                    root_value=self.root_value,
                    operation_name=operation_name,
                )
            )
        except TimeoutError:
            result = timed_out(self.view.execution_timeout)
        try:
            await self.send_data_message(result, operation_id)
            await self.send_message({"type": "complete", "id": operation_id})
        finally:
            self.tasks.pop(operation_id, None)

    async def handle_stop(self, message: StopMessage) -> None:
        # Strawberry answers a stop with `complete` from the operation's task; a task
        # cancelled before it first ran never answers, and the client waits for nothing.
        operation_id = message["id"]
        known = operation_id in self.tasks
        self._stopping.add(operation_id)
        try:
            await super().handle_stop(message)
        finally:
            self._stopping.discard(operation_id)
        if known and operation_id not in self._completed:
            await self.send_message({"type": "complete", "id": operation_id})
        self._completed.discard(operation_id)

    async def _close_unless_initialised(self) -> None:
        await asyncio.sleep(self.limits.init_timeout)
        await self.websocket.close(code=4408, reason="Connection initialisation timeout")
