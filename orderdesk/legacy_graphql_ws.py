"""The legacy graphql-ws websocket subprotocol (subscriptions-transport-ws), as GraphQL
Playground speaks it: Strawberry's handler with bounded sends, caps, token expiry and an
init timeout, and queries and mutations carried as well as subscriptions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, cast

from graphql import GraphQLError
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import (
    ConnectionInitMessage,
    ErrorMessage,
    OperationMessage,
    StartMessage,
    StopMessage,
)

from handlers.rate_limit import RateLimited
from orderdesk.bounded_sends import BoundedSends, limits_of, start_operation
from orderdesk.operation_limits import TooManySockets, operation_type, timed_out
from orderdesk.socket_documents import socket_document
from orderdesk.socket_operations import observed_operation
from orderdesk.websocket_protocols import EXPIRED_CODE, SUBSCRIPTION, TOO_MANY_CODE, malformed
from schema.errors import finish_errors

logger = logging.getLogger("orderdesk.websocket")


class GraphQLWSHandler(BoundedSends, BaseGraphQLWSHandler[Any, Any]):
    """The legacy graphql-ws (subscriptions-transport-ws) protocol, with the same bounded
    sends and an init timeout (4408): an unauthenticated socket must not idle forever.

    Its other rules are the legacy protocol's own, which GraphQL Playground expects: a
    second `start` with a live id replaces that operation, unparsable messages are ignored,
    keep-alives are `ka` messages that need no answer.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits_of(self.view)
        self._init_timeout: asyncio.Task[None] | None = None
        self._completed: set[str] = set()
        self._stopping: set[str] = set()

    async def handle(self) -> None:
        if not await self._admitted():
            return
        self._init_timeout = asyncio.create_task(self._close_unless_initialised())
        try:
            await super().handle()
        finally:
            self._give_back()
            self._init_timeout.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._init_timeout

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
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
        if self.connection_acknowledged:
            # The persisted documents policy first, as over HTTP; then the text it chose is
            # held to the limits a sent one is.
            chosen = await socket_document(self, message["payload"])
            if isinstance(chosen, list):
                await self._refuse_operation(message["id"], chosen[0])
                return
            message = cast(StartMessage, {**message, "payload": chosen})
        if (too_long := self._too_long(message)) is not None:
            await self._refuse_operation(message["id"], too_long.as_graphql())
            return
        if self.connection_acknowledged:
            try:
                # The schema's parse, cached for execution. A syntax error raised there would
                # escape Strawberry's handler, and the client would be told nothing.
                self.view.parse(message["payload"]["query"])
            except GraphQLError as error:
                await self._refuse_operation(message["id"], finish_errors([error])[0])
                return
        self._completed.discard(message["id"])
        await super().handle_start(message)
        if message["id"] in self.tasks and (held := self._held_back()):
            await self.send_message(cast(OperationMessage, {"type": "ka", "payload": held}))

    async def _refuse_operation(self, operation_id: str, error: GraphQLError) -> None:
        """The protocol's `error` for an operation that never started (one error, as
        Strawberry's own for a document that does not validate)."""
        await self.send_message(
            ErrorMessage(type="error", id=operation_id, payload=error.formatted)
        )

    async def handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        async with observed_operation(self, "graphql-ws", query, operation_name):
            await self._handle_observed(operation_id, query, operation_name, variables)

    async def _handle_observed(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        start_operation(self.context)
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
