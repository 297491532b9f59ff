"""graphql-transport-ws, the current websocket subprotocol: Strawberry's handler with server
pings, bounded sends, caps and token expiry, queries and mutations under the HTTP deadline,
and one subscription shared by the sockets that ask for the same
(orderdesk/shared_subscriptions.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any, cast

from graphql import GraphQLError, GraphQLSyntaxError, get_operation_ast
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

from handlers.rate_limit import RateLimited
from orderdesk.bounded_sends import BoundedSends, limits_of, start_operation
from orderdesk.operation_limits import TooManySockets, timed_out, too_large
from orderdesk.shared_subscriptions import Frame, SharedSubscriptions
from orderdesk.socket_documents import socket_document
from orderdesk.socket_operations import observed_operation
from orderdesk.websocket_protocols import EXPIRED_CODE, SUBSCRIPTION, TOO_MANY_CODE, malformed

PONG_TIMEOUT_CODE = 1011
"""The close code for a client that did not answer a ping (as the websockets library uses)."""


class GraphQLTransportWSHandler(BoundedSends, BaseGraphQLTransportWSHandler[Any, Any]):
    """graphql-transport-ws with server pings: `ping` every `ping_interval` seconds once the
    connection is acknowledged; no `pong` within `pong_timeout` closes the socket (1011)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits_of(self.view)
        self._pinger: asyncio.Task[None] | None = None
        self._pong = asyncio.Event()
        self._one_shot: set[str] = set()

    async def handle(self) -> None:
        if not await self._admitted():
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
            # The persisted documents policy first, as over HTTP; then the text it chose is
            # held to the limits a sent one is.
            chosen = await socket_document(self, message["payload"])
            if isinstance(chosen, list):
                await self._refuse_operation(message["id"], chosen)
                return
            message = cast(SubscribeMessage, {**message, "payload": chosen})
            if (too_long := self._too_long(message)) is not None:
                await self._refuse_operation(message["id"], [too_long.as_graphql()])
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

    async def _refuse_operation(self, operation_id: str, errors: list[GraphQLError]) -> None:
        """The protocol's `error` for an operation that never started; the socket stays open."""
        refused: Any = {
            "id": operation_id,
            "type": "error",
            "payload": [error.formatted for error in errors],
        }
        await self.send_message(refused)

    async def send_message(self, message: Message) -> None:
        text = self._bounded_payload(message)
        await self._bounded_send(lambda: self.websocket.ws.send_text(text))

    async def run_operation(self, operation: Operation[Any, Any]) -> None:
        async with observed_operation(
            self, "graphql-transport-ws", operation.query, operation.operation_name
        ):
            await self._run_observed(operation)

    async def _run_observed(self, operation: Operation[Any, Any]) -> None:
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
        start_operation(self.context)
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
            start_operation(self.context)  # in the group's own task
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
