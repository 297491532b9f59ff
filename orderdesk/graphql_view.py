"""Strawberry's ASGI view, with what the GraphQL-over-HTTP spec adds: media types, status
codes, JSON errors for malformed requests, a body limit and request ids."""

from __future__ import annotations

import itertools
import json
import os
import re
import uuid
from typing import Any

from cross_web import HTTPException
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from mediator import Context
from orderdesk.bootstrap import Services
from orderdesk.graphiql import PAGE as GRAPHIQL_PAGE
from orderdesk.shared_subscriptions import SharedSubscriptions
from orderdesk.tokens import InvalidToken
from orderdesk.websocket_protocols import (
    ABORT,
    GraphQLTransportWSHandler,
    GraphQLWSHandler,
    SocketLimits,
    find_transport_abort,
)
from schema.context import Loaders, RequestContext
from schema.errors import finish_errors

GRAPHQL_RESPONSE = "application/graphql-response+json"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


# A new id is this process's random prefix and a counter: unique across processes and
# restarts, like a uuid4, at a fraction of its cost per request (ids are not secrets).
_ID_PREFIX = uuid.uuid4().hex[:16]
_next_id = itertools.count(1).__next__


def _new_id_prefix() -> None:
    # A worker forked after import must not repeat its parent's ids.
    global _ID_PREFIX, _next_id  # noqa: PLW0603
    _ID_PREFIX = uuid.uuid4().hex[:16]
    _next_id = itertools.count(1).__next__


os.register_at_fork(after_in_child=_new_id_prefix)


def request_id(headers: Any) -> str:
    """The caller's X-Request-ID if it is a sane token, else a new one."""
    given = headers.get("x-request-id")
    if given and _REQUEST_ID.fullmatch(given):
        return str(given)
    return f"{_ID_PREFIX}{_next_id():016x}"


def wants_graphql_response(request: Request) -> bool:
    """Whether the client asked for application/graphql-response+json (and so its status codes).

    Clients that ask only for application/json (most today) get it, with 200 for every
    well-formed response, as the spec's compatibility rules require.
    """
    return GRAPHQL_RESPONSE in request.headers.get("accept", "")


class _BodyTooLarge(Exception):
    pass


class GraphQLView(GraphQL[RequestContext, None]):
    graphql_transport_ws_handler_class = GraphQLTransportWSHandler
    graphql_ws_handler_class = GraphQLWSHandler

    def __init__(
        self,
        *args: Any,
        max_body_bytes: int,
        socket_limits: SocketLimits,
        shared_subscriptions: SharedSubscriptions | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.max_body_bytes = max_body_bytes
        self.socket_limits = socket_limits
        self.shared_subscriptions = shared_subscriptions

    async def get_context(self, request: Request | WebSocket, response: Any) -> RequestContext:
        services: Services = request.app.state.services
        ctx = Context(correlation_id=request_id(request.headers))
        if isinstance(response, Response):
            response.headers["X-Request-ID"] = ctx.correlation_id
            try:
                ctx.identity = services.tokens.from_header(request.headers.get("authorization"))
            except InvalidToken as error:
                raise HTTPException(401, f"invalid bearer token: {error}") from None
        return RequestContext(
            mediator=services.mediator,
            ctx=ctx,
            request_loaders=Loaders(services.mediator, ctx),
            issue_customer_token=services.tokens.issue_for_customer,
            request=request,
            response=response,
        )

    async def on_ws_connect(self, context: RequestContext) -> UnsetType | dict[str, object] | None:
        """Authenticate a websocket from its `connection_init` payload (browsers cannot set
        headers on websockets): `{"Authorization": "Bearer <token>"}`."""
        params = context.connection_params
        value = None
        if isinstance(params, dict):
            value = params.get("Authorization") or params.get("authorization")
        if value is not None and not isinstance(value, str):
            raise ConnectionRejectionError({"message": "Authorization must be a string"})
        services: Services = context.request.app.state.services
        try:
            context.ctx.identity = services.tokens.from_header(value)
        except InvalidToken as error:
            raise ConnectionRejectionError({"message": f"invalid bearer token: {error}"}) from None
        # UNSET (typed Any by Strawberry) acknowledges with no payload.
        acknowledged: UnsetType = UNSET
        return acknowledged

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(GRAPHIQL_PAGE)

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        if result.errors:
            result.errors = finish_errors(result.errors)
            if result.data is None and all(e.path is None for e in result.errors):
                # Nothing was executed: the document or its variables were refused.
                request.state.graphql_request_error = True
        return await super().process_result(request, result)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                scope[ABORT] = find_transport_abort(send)
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive=self._limited(scope, receive))
        try:
            response = await self.run(request)
        except _BodyTooLarge:
            response = _error_response(413, f"the request body exceeds {self.max_body_bytes} bytes")
        except HTTPException as error:
            response = _error_response(error.status_code, error.reason)
        if response.media_type == "application/json" and wants_graphql_response(request):
            response.headers["content-type"] = f"{GRAPHQL_RESPONSE}; charset=utf-8"
            if getattr(request.state, "graphql_request_error", False):
                response.status_code = 400
        await response(scope, receive, send)

    def _limited(self, scope: Scope, receive: Receive) -> Receive:
        limit = self.max_body_bytes
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:

            async def refuse() -> Message:
                raise _BodyTooLarge

            return refuse
        received = 0

        async def counting() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise _BodyTooLarge
            return message

        return counting


def _error_response(status: int, message: str) -> Response:
    code = {
        401: "UNAUTHENTICATED",
        405: "METHOD_NOT_ALLOWED",
        413: "PAYLOAD_TOO_LARGE",
        415: "UNSUPPORTED_MEDIA_TYPE",
    }.get(status, "BAD_REQUEST")
    body = {"errors": [GraphQLError(message, extensions={"code": code}).formatted]}
    headers = {"Allow": "GET, POST"} if status == 405 else None
    if status == 401:
        headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    return JSONResponse(json.loads(json.dumps(body)), status_code=status, headers=headers)
