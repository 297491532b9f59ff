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

import json

from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from strawberry.types import ExecutionResult

from orderdesk.accepted_streams import (
    COMPLETE,
    STREAM_HEADERS_TEXT,
    AcceptedStream,
    StreamedOperation,
    next_event,
)
from orderdesk.event_stream_requests import (
    Refused,
    asked_operation,
    asks_for_event_stream,
    hold,
    operation_kind,
    refusal,
)
from orderdesk.graphql_view import GraphQLView
from orderdesk.operation_results import shown
from orderdesk.request_reading import limited
from orderdesk.response_status import REFUSALS, error_response, refusal_of
from orderdesk.server_stopping import watch_for_stop
from schema.context import RequestContext

DISTINCT_CONNECTIONS_ONLY = (
    "GraphQL over SSE is served in distinct connections mode only: one GET or POST with "
    "`Accept: text/event-stream` per operation (graphql-sse's createClient with "
    "singleConnection: false)"
)


EVENT_STREAM_BYTES = b"text/event-stream"


def _accept(scope: Scope) -> bytes:
    for name, value in scope["headers"]:
        if name == b"accept":
            return bytes(value).lower()
    return b""


class EventStreams:
    """The ASGI app for /graphql: event-stream requests served here, the rest by `view`."""

    def __init__(self, view: GraphQLView) -> None:
        self.view = view

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.view(scope, receive, send)
            return
        method = scope["method"]
        if method in ("PUT", "DELETE"):
            # graphql-sse's single connection mode starts with a PUT reservation.
            refused: Response = error_response(405, DISTINCT_CONNECTIONS_ONLY)
            await refused(scope, receive, send)
            return
        if (
            method not in ("GET", "POST")
            # Raw bytes first: nearly every request is no stream, and pays only this.
            or EVENT_STREAM_BYTES not in _accept(scope)
            or not asks_for_event_stream(Headers(scope=scope))
        ):
            await self.view(scope, receive, send)
            return
        try:
            await self._serve(scope, receive, send)
            return
        except ClientDisconnect:
            return  # gone while its body was read: nothing ran, no one to answer
        except Refused as error:
            refused = error.response
        except REFUSALS as error:
            refused = refusal_of(error)
        await refused(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        view = self.view
        # Watched from the start: a stop that comes while the body is read is seen too.
        stopping = watch_for_stop(scope)
        request = Request(scope, limited(scope, receive, view.max_body_bytes))
        asked = await asked_operation(view, request)
        # With a Response, as for any HTTP request: the token is checked there.
        context: RequestContext = await view.get_context(request, response=Response())
        # By the view's persisted documents policy: a stream is no way around it. A new APQ
        # text is run but not registered here (graphql-sse's client sends texts).
        chosen = await view.choose(request, asked, context)
        if isinstance(chosen, ExecutionResult):
            # Refused as a document that does not validate is: inside the stream.
            body = next_event(json.dumps(shown(chosen), separators=(",", ":"))) + COMPLETE
            await Response(body, headers=dict(STREAM_HEADERS_TEXT))(scope, receive, send)
            return
        operation = chosen.operation
        query = operation.query
        if query is None or not query.strip():
            raise refusal(
                400,
                "the request must carry the document as `query` (or a trusted document's "
                "`documentId`)",
                "BAD_REQUEST",
            )
        name = operation.operation_name
        kind = operation_kind(view, query, name, method=request.method)
        held = hold(view, scope, context)
        try:
            streamed = StreamedOperation(query, operation.variables, name, kind)
            await AcceptedStream(view, receive, send, context, streamed, stopping).run()
        finally:
            held()
