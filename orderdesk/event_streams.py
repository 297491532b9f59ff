"""GraphQL over Server-Sent Events (the graphql-sse protocol, distinct connections mode) at
the GraphQL path, for clients behind proxies that do not pass websockets.

A GET or POST to /graphql whose Accept asks for text/event-stream is one operation on one
response: its results are `event: next` messages and a final `event: complete`. Everything
else goes to the GraphQL view unchanged. A stream is held to what a websocket is: the same
bearer token (through the view's `authenticate`), the same caps on what one address and one
caller may hold open (counted together with their websockets), the same document limits
(it is the same schema execution), the same rate limits (the middleware counts the request),
the same deadline for a query or a mutation, and the same end when the token expires.

What is refused before anything runs (a body or query text too long, JSON that is not a
request, a document that does not parse, a bad token, a cap reached) is a plain 4xx with a
JSON GraphQL error. Validation errors, as the protocol requires, are reported inside an
accepted stream, as a `next` whose payload holds them, and a `complete`: the graphql-sse
client retries any response that is not 2xx, and would retry a wrong document for a minute
before it showed the error.

A client that stops reading is dropped once one write has waited `send_timeout` (as a
websocket is, orderdesk/bounded_sends.py): each subscription's queue is bounded, so nothing
piles up meanwhile. A comment every `ping_interval` keeps proxies from closing an idle
stream. The single connection mode (a PUT reservation, then operations by token) is not
served: a PUT or DELETE is answered 405.
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
from typing import Any

from cross_web import HTTPException
from graphql import GraphQLError, GraphQLSyntaxError, OperationType, get_operation_ast
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError

from handlers.access import identity_of
from handlers.rate_limit import RateLimited
from orderdesk.bootstrap import Services
from orderdesk.bounded_sends import start_operation
from orderdesk.graphql_view import GraphQLView
from orderdesk.operation_limits import QueryTooLong, timed_out, too_large
from orderdesk.operation_requests import OperationRequest, RequestRefused, operation_request
from orderdesk.rate_limits import client_address, too_many_requests
from orderdesk.shared_subscriptions import Frame
from orderdesk.socket_operations import observed_operation
from schema.context import RequestContext
from schema.errors import finish_errors

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
SHUTDOWN_POLL = 0.5
"""Seconds between looks at whether the server is shutting down (see `_ResponseCycle`)."""


def asks_for_event_stream(headers: Headers) -> bool:
    """Whether the Accept header names text/event-stream (with any parameters, q above 0)."""
    for part in headers.get("accept", "").split(","):
        media_type, *parameters = (piece.strip().lower() for piece in part.split(";"))
        if media_type == EVENT_STREAM and "q=0" not in parameters:
            return True
    return False


class _Refused(Exception):
    """A request answered with a 4xx before any stream starts."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class _ClientGone(Exception):
    """The client closed the stream, or stopped reading and was dropped."""


def refusal(
    status: int,
    message: str,
    code: str,
    *,
    headers: dict[str, str] | None = None,
    **extensions: object,
) -> _Refused:
    error = GraphQLError(message, extensions={"code": code, **extensions})
    return _Refused(JSONResponse({"errors": [error.formatted]}, status, headers=headers))


class EventStreams:
    """The ASGI app for /graphql: event-stream requests served here, the rest by `view`."""

    def __init__(self, view: GraphQLView) -> None:
        self.view = view
        self.shutdowns = _ShutdownWatch()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.view(scope, receive, send)
            return
        method = scope["method"]
        if method in ("PUT", "DELETE"):
            # graphql-sse's single connection mode starts with a PUT reservation.
            response: Response = refusal(
                405,
                "GraphQL over SSE is served in distinct connections mode only: one GET or "
                "POST with `Accept: text/event-stream` per operation (graphql-sse's "
                "createClient with singleConnection: false)",
                "METHOD_NOT_ALLOWED",
                headers={"Allow": "GET, POST"},
            ).response
            await response(scope, receive, send)
            return
        if method not in ("GET", "POST") or not asks_for_event_stream(Headers(scope=scope)):
            await self.view(scope, receive, send)
            return
        try:
            await self._serve(scope, receive, send)
        except _Refused as refused:
            await refused.response(scope, receive, send)
        except ClientDisconnect:
            pass  # gone while its body was read: nothing ran, no one to answer

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        view = self.view
        request = Request(scope, receive)
        try:
            asked = operation_request(await self._params(request), "sse")
        except HTTPException as error:
            raise refusal(error.status_code, error.reason, "BAD_REQUEST") from None
        try:
            # With a Response, as for any HTTP request: the token is checked there.
            context: RequestContext = await view.get_context(request, response=Response())
        except HTTPException as error:
            raise refusal(
                error.status_code,
                error.reason,
                "UNAUTHENTICATED",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            ) from None
        except RateLimited as error:
            raise _Refused(too_many_requests(error.retry_after)) from None
        chosen = await self._choose(request, asked, context)
        if isinstance(chosen, ExecutionResult):
            # Refused as a document that does not validate is: inside the stream.
            body = _next_event(json.dumps(_payload(chosen), separators=(",", ":"))) + COMPLETE
            await Response(body, headers=dict(STREAM_HEADERS_TEXT))(scope, receive, send)
            return
        query, operation_name = chosen.query, chosen.operation_name
        if query is None or not query.strip():
            raise refusal(
                400,
                "the request must carry the document as `query` (or a trusted document's "
                "`documentId`)",
                "BAD_REQUEST",
            )
        if len(query) > view.max_query_length:
            limit = view.max_query_length
            raise refusal(400, str(QueryTooLong(limit)), QueryTooLong.code, maxLength=limit)
        kind = self._operation_kind(query, operation_name, method=request.method)
        held = self._hold(scope, context)
        try:
            operation = _Operation(query, chosen.variables, operation_name, kind)
            await _Stream(self, receive, send, context, operation).run()
        finally:
            held()

    async def _choose(
        self, request: Request, asked: OperationRequest, context: RequestContext
    ) -> OperationRequest | ExecutionResult:
        """The text to run, by the view's persisted documents policy (a trusted document's
        id, an APQ hash known to the store, persisted_only): a stream is no way around it.
        A new APQ text is run but not registered here (graphql-sse's client sends texts)."""
        services: Services = request.app.state.services
        identity = identity_of(context.ctx)
        try:
            chosen = await self.view.persisted_documents.choose(
                asked,
                store=services.persisted_queries,
                staff=identity is not None and identity.is_staff,
            )
        except RequestRefused as refused:
            extensions = {"code": refused.code, **refused.extensions}
            error = GraphQLError(str(refused), extensions=extensions)
            raise _Refused(JSONResponse({"errors": [error.formatted]}, refused.status)) from None
        return chosen if isinstance(chosen, ExecutionResult) else chosen.operation

    async def _params(self, request: Request) -> dict[str, Any]:
        """The operation's parameters from the query string (GET) or the JSON body (POST)."""
        if request.method == "GET":
            raw: dict[str, Any] = dict(request.query_params)
            for name in ("variables", "extensions"):
                if raw.get(name):
                    raw[name] = self._decoded(name, raw[name])
            return raw
        content_type = request.headers.get("content-type", "")
        if content_type.split(";")[0].strip().lower() != "application/json":
            raise refusal(
                415,
                "the body of a POST must be JSON (Content-Type: application/json)",
                "UNSUPPORTED_MEDIA_TYPE",
            )
        body = await self._body(request)
        try:
            value = self.view.decode_json(body)
        except json.JSONDecodeError as error:
            raise refusal(400, f"the body is not JSON: {error}", "BAD_REQUEST") from None
        if isinstance(value, list):
            raise refusal(400, "batches are not served as event streams", "BAD_REQUEST")
        if not isinstance(value, dict):
            raise refusal(400, "the request body must be a JSON object", "BAD_REQUEST")
        return value

    def _decoded(self, name: str, text: str) -> object:
        try:
            value = self.view.decode_json(text)
        except json.JSONDecodeError:
            raise refusal(400, f"`{name}` must be a JSON object", "BAD_REQUEST") from None
        if not isinstance(value, dict):
            raise refusal(400, f"`{name}` must be a JSON object", "BAD_REQUEST")
        return value

    async def _body(self, request: Request) -> bytes:
        limit = self.view.max_body_bytes
        declared = request.headers.get("content-length", "")
        too_big = refusal(413, f"the request body exceeds {limit} bytes", "PAYLOAD_TOO_LARGE")
        if declared.isdigit() and int(declared) > limit:
            raise too_big
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise too_big
        return bytes(body)

    def _operation_kind(
        self, query: str, operation_name: str | None, *, method: str
    ) -> OperationType:
        try:
            # The schema's parse: bounded by the token limit, and cached for execution.
            document = self.view.parse(query)
        except GraphQLSyntaxError as error:
            errors = finish_errors([error])
            body = {"errors": [e.formatted for e in errors]}
            raise _Refused(JSONResponse(body, 400)) from None
        operation = get_operation_ast(document, operation_name)
        if operation is None:
            message = (
                f"the document has no operation named {operation_name!r}"
                if operation_name
                else "the document holds several operations: name one in `operationName`"
            )
            raise refusal(400, message, "BAD_REQUEST")
        if operation.operation is OperationType.MUTATION and method == "GET":
            raise refusal(
                405, "mutations are sent with POST", "METHOD_NOT_ALLOWED", headers={"Allow": "POST"}
            )
        return operation.operation

    def _hold(self, scope: Scope, context: RequestContext) -> Callable[[], None]:
        """Count the stream against its address's and its caller's caps (the same counts as
        their websockets); what gives the places back. Refused (429) over either cap."""
        sockets = self.view.open_sockets
        address = client_address(scope)
        if address is not None and not sockets.open_for_address(address):
            raise refusal(
                429,
                f"too many open event streams and websockets from this address (at most "
                f"{sockets.per_address}): close one first",
                "TOO_MANY_STREAMS",
                limit=sockets.per_address,
            )
        identity = context.ctx.identity
        subject = None if identity is None else str(getattr(identity, "subject", ""))
        if subject is not None and not sockets.open_for_identity(subject):
            if address is not None:
                sockets.close_for_address(address)
            raise refusal(
                429,
                f"too many open event streams and websockets for this caller (at most "
                f"{sockets.per_identity}): close one first",
                "TOO_MANY_STREAMS",
                limit=sockets.per_identity,
            )

        def give_back() -> None:
            if address is not None:
                sockets.close_for_address(address)
            if subject is not None:
                sockets.close_for_identity(subject)

        return give_back


@dataclass(frozen=True, slots=True)
class _Operation:
    query: str
    variables: dict[str, Any] | None
    operation_name: str | None
    kind: OperationType


class _Stream:
    """One accepted event stream: its writes, its pings, and what ends it."""

    def __init__(
        self,
        streams: EventStreams,
        receive: Receive,
        send: Send,
        context: RequestContext,
        operation: _Operation,
    ) -> None:
        self.view = streams.view
        self.shutdowns = streams.shutdowns
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
        await self._write(start)
        produce = asyncio.create_task(self._produce(), name="event-stream")
        disconnected = asyncio.create_task(self._disconnected(), name="event-stream-disconnect")
        pings = asyncio.create_task(self._ping(), name="event-stream-ping")
        shutdown = asyncio.create_task(
            self.shutdowns.wait(self.cycle), name="event-stream-shutdown"
        )
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
            elif produce in done and not isinstance(produce.exception(), _ClientGone):
                logger.error("an event stream failed", exc_info=produce.exception())
                await self._end(COMPLETE)
        except _ClientGone:
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
                await self._write_body(self._event(_payload(result)))
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
                    payload = _payload(result)
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
        return _next_event(payload)

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
                raise _ClientGone
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
                raise _ClientGone from None
            except OSError:
                self._gone = True
                raise _ClientGone from None


def _next_event(payload: str) -> bytes:
    # JSON has no raw line breaks, so the payload is one `data` line.
    return f"event: next\ndata: {payload}\n\n".encode()


def _payload(result: ExecutionResult) -> dict[str, object]:
    """A result as the protocol's `next` carries it: an error before execution has no
    `data` (the GraphQL spec's rule for a request that never ran)."""
    payload: dict[str, object] = {}
    if not isinstance(result, PreExecutionError):
        payload["data"] = result.data
    if result.errors:
        payload["errors"] = [error.formatted for error in result.errors]
    if result.extensions:
        payload["extensions"] = result.extensions
    return payload


def _position(payload: dict[str, object]) -> str | None:
    data = payload.get("data")
    if isinstance(data, dict) and len(data) == 1:
        (event,) = data.values()
        if isinstance(event, dict) and isinstance(event.get("position"), str):
            return str(event["position"])
    return None


class _ShutdownWatch:
    """Tells open streams that the server is shutting down.

    uvicorn waits for every response to finish before it shuts the app down, and an event
    stream never finishes by itself: without this, a stopping server would wait on its
    subscribers forever. uvicorn tells an HTTP response of its shutdown only by clearing the
    `keep_alive` of its request cycle (nothing else clears it once the response has
    started), so one task looks at the open streams' cycles twice a second while any is
    open. Under another server no cycle is found and streams end with their clients.
    """

    def __init__(self) -> None:
        self._streams: dict[asyncio.Event, Any] = {}
        self._watcher: asyncio.Task[None] | None = None

    async def wait(self, cycle: Any) -> None:
        if cycle is None or not cycle.keep_alive:
            # Nothing to watch: a client that asked to close after this response is told
            # nothing either.
            await asyncio.Event().wait()
            return
        stopping = asyncio.Event()
        self._streams[stopping] = cycle
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch(), name="event-stream-shutdowns")
        try:
            await stopping.wait()
        finally:
            del self._streams[stopping]

    async def _watch(self) -> None:
        try:
            while self._streams:
                await asyncio.sleep(SHUTDOWN_POLL)
                for stopping, cycle in self._streams.items():
                    if not cycle.keep_alive:
                        stopping.set()
        finally:
            self._watcher = None


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
