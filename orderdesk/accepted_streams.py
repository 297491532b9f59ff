"""One accepted event stream (orderdesk/event_streams.py): what it sends (one result for a
query or a mutation, every event of a subscription, shared with the other subscribers of the
same subscription where it can be), how (each write bounded by `send_timeout`, a comment
every `ping_interval`), and what ends it: its operation's end (`complete`), its client's
going, its token's expiry (an UNAUTHENTICATED error, then `complete`) or the server's stop
(no `complete`, so that graphql-sse's client reconnects, to another process, and resumes).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError, OperationType
from starlette.types import Message, Receive, Send

from orderdesk.bounded_sends import start_operation
from orderdesk.operation_limits import timed_out, too_large
from orderdesk.operation_results import shown
from orderdesk.shared_subscriptions import Frame
from orderdesk.socket_operations import observed_operation
from schema.context import RequestContext

if TYPE_CHECKING:
    from orderdesk.graphql_view import GraphQLView

logger = logging.getLogger("orderdesk.event_streams")

EVENT_STREAM = "text/event-stream"
STREAM_HEADERS = [
    (b"content-type", EVENT_STREAM.encode()),
    # Neither cached nor compressed on the way: either would hold events back.
    (b"cache-control", b"no-cache, no-transform"),
    # nginx buffers a response unless told not to.
    (b"x-accel-buffering", b"no"),
]
STREAM_HEADERS_TEXT = [(name.decode(), value.decode()) for name, value in STREAM_HEADERS]
PING = b": ping\n\n"
COMPLETE = b"event: complete\ndata:\n\n"
MAX_WRAPPING = 12
"""Layers of middleware `_response_cycle` looks through for the server's own `send`."""


class ClientGone(Exception):
    """The client closed the stream, or stopped reading and was dropped."""


@dataclass(frozen=True, slots=True)
class StreamedOperation:
    query: str
    variables: dict[str, Any] | None
    operation_name: str | None
    kind: OperationType


class AcceptedStream:
    """One accepted event stream: its writes, its pings, and what ends it."""

    def __init__(
        self,
        view: GraphQLView,
        receive: Receive,
        send: Send,
        context: RequestContext,
        operation: StreamedOperation,
        stopping: asyncio.Event,
    ) -> None:
        self.view = view
        self.stopping = stopping
        self.receive = receive
        self.send = send
        self.context = context
        self.operation = operation
        self.send_timeout = self.view.socket_limits.send_timeout
        self.cycle = _response_cycle(send)
        self.last_position: str | None = None
        self._writing = asyncio.Lock()
        self._gone = False

    async def run(self) -> None:
        start = {"type": "http.response.start", "status": 200, "headers": list(STREAM_HEADERS)}
        try:
            await self._write(start)
        except ClientGone:
            return  # gone before the stream began: nothing to end, no one to tell
        produce = asyncio.create_task(self._produce(), name="event-stream")
        disconnected = asyncio.create_task(self._disconnected(), name="event-stream-disconnect")
        pings = asyncio.create_task(self._ping(), name="event-stream-ping")
        shutdown = asyncio.create_task(self.stopping.wait(), name="event-stream-shutdown")
        expiry = asyncio.create_task(self._expiry(), name="event-stream-expiry")
        tasks = {produce, disconnected, pings, shutdown, expiry}
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        try:
            if produce in done and produce.exception() is None:
                await self._end(COMPLETE)
            elif expiry in done and not (done & {disconnected, shutdown}):
                # As a websocket is closed with its token: the client needs a fresh one.
                expired = self._error("the bearer token has expired", "UNAUTHENTICATED")
                await self._end(self._event(expired) + COMPLETE)
            elif shutdown in done and disconnected not in done:
                # Ended without `complete`: the client reconnects (to another process) and
                # resumes, where `complete` would tell it the subscription is over.
                await self._end(b"")
            elif produce in done and not isinstance(produce.exception(), ClientGone):
                logger.error("an event stream failed", exc_info=produce.exception())
                await self._end(COMPLETE)
        except ClientGone:
            pass

    # ------------------------------------------------------------ what is sent

    async def _produce(self) -> None:
        operation = self.operation
        # Traced and counted (active subscriptions by transport) as a websocket's are.
        async with observed_operation(self, "sse", operation.query, operation.operation_name):
            await self._deliver()

    async def _deliver(self) -> None:
        operation = self.operation
        start_operation(self.context)
        if operation.kind is not OperationType.SUBSCRIPTION:
            # A query or a mutation: one result, within the deadline an HTTP request has.
            try:
                results = await self.view.deadlines.run(self._results_of_one_shot())
            except TimeoutError:
                results = [timed_out(self.view.execution_timeout)]
            for result in results:
                await self._write_body(self._event(shown(result)))
            return
        shared = self.view.shared_subscriptions
        key = None
        if shared is not None:
            key = shared.key(
                operation.query,
                operation.variables,
                operation.operation_name,
                self.context.ctx.identity,
            )
        if shared is None or key is None:
            source = await self._start()
            async with aclosing(source):
                async for result in source:
                    payload = shown(result)
                    self.last_position = _position(payload) or self.last_position
                    await self._write_body(self._event(payload))
            return

        async def start() -> Any:
            start_operation(self.context)  # in the group's own task
            return await self._start()

        await shared.follow(key, start, self._send_frame, self._cut_off)

    async def _start(self) -> AsyncGenerator[Any, None]:
        operation = self.operation
        source: AsyncGenerator[Any, None] = await self.view.schema.stream(
            operation.query,
            variable_values=operation.variables,
            context_value=self.context,
            operation_name=operation.operation_name,
        )
        return source

    async def _results_of_one_shot(self) -> list[Any]:
        source = await self._start()
        async with aclosing(source):
            return [result async for result in source]

    async def _send_frame(self, frame: Frame) -> None:
        if frame.kind == "next":
            # Encoded once for every subscriber of the shared stream.
            self.last_position = frame.position or self.last_position
            await self._write_body(self._event_text(frame.payload))
        elif frame.kind == "error":
            await self._write_body(self._event_text(f'{{"errors":{frame.payload}}}'))

    async def _cut_off(self, position: str | None) -> None:
        resume = f'resume with after: "{position}"' if position else "resume with after"
        queue_size = getattr(self.view.shared_subscriptions, "queue_size", 0)
        error = self._error(
            f"the subscriber fell {queue_size} events behind and was disconnected; {resume}",
            "SUBSCRIBER_TOO_SLOW",
        )
        await self._write_body(self._event(error))

    def _error(self, message: str, code: str) -> dict[str, object]:
        extensions: dict[str, object] = {"code": code}
        if self.last_position is not None:
            extensions["resumeAfter"] = self.last_position
        return {"errors": [GraphQLError(message, extensions=extensions).formatted]}

    def _event(self, payload: dict[str, object]) -> bytes:
        return self._event_text(json.dumps(payload, separators=(",", ":")))

    def _event_text(self, payload: str) -> bytes:
        limit = self.view.max_response_bytes
        if len(payload) > limit:
            payload = json.dumps(too_large(len(payload), limit))
        return next_event(payload)

    # ------------------------------------------------------------ how it is sent

    async def _ping(self) -> None:
        interval = self.view.socket_limits.ping_interval
        while True:
            await asyncio.sleep(interval)
            await self._write_body(PING)

    async def _expiry(self) -> None:
        expires_at = self.context.credential_expires_at
        if expires_at is None:
            await asyncio.Event().wait()
            return
        await asyncio.sleep(max(0.0, expires_at - time.time()))

    async def _disconnected(self) -> None:
        while (await self.receive())["type"] != "http.disconnect":
            pass
        self._gone = True

    async def _write_body(self, chunk: bytes) -> None:
        await self._write({"type": "http.response.body", "body": chunk, "more_body": True})

    async def _end(self, chunk: bytes) -> None:
        await self._write({"type": "http.response.body", "body": chunk, "more_body": False})

    async def _write(self, message: Message) -> None:
        async with self._writing:
            if self._gone:
                raise ClientGone
            try:
                async with asyncio.timeout(self.send_timeout):
                    await self.send(message)
            except TimeoutError:
                logger.warning(
                    "dropping an event stream whose client has not read for %s s",
                    self.send_timeout,
                )
                self._gone = True
                # A close would wait for the full buffer to drain; ASGI has no abort.
                # (uvloop's transports are not asyncio.Transport subclasses.)
                abort = getattr(getattr(self.cycle, "transport", None), "abort", None)
                if callable(abort):
                    abort()
                raise ClientGone from None
            except OSError:
                self._gone = True
                raise ClientGone from None


def next_event(payload: str) -> bytes:
    # JSON has no raw line breaks, so the payload is one `data` line.
    return f"event: next\ndata: {payload}\n\n".encode()


def _position(payload: dict[str, object]) -> str | None:
    data = payload.get("data")
    if isinstance(data, dict) and len(data) == 1:
        (event,) = data.values()
        if isinstance(event, dict) and isinstance(event.get("position"), str):
            return str(event["position"])
    return None


def _response_cycle(send: Callable[..., Any]) -> Any:
    """uvicorn's request cycle under an ASGI `send` (its `send` is a method of the cycle),
    through the middleware's wrapping closures and partials; None under another server."""
    seen: set[int] = set()
    todo: list[tuple[object, int]] = [(send, 0)]
    while todo:
        candidate, depth = todo.pop()
        if id(candidate) in seen or depth > MAX_WRAPPING:
            continue
        seen.add(id(candidate))
        owner = getattr(candidate, "__self__", None)
        if hasattr(owner, "keep_alive") and hasattr(owner, "response_complete"):
            return owner
        wrapped: list[object] = []
        for cell in getattr(candidate, "__closure__", None) or ():
            with contextlib.suppress(ValueError):
                wrapped.append(cell.cell_contents)
        if isinstance(candidate, functools.partial):
            wrapped += [candidate.func, *candidate.args, *candidate.keywords.values()]
        todo.extend((inner, depth + 1) for inner in wrapped if callable(inner))
    return None
