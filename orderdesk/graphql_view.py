"""Strawberry's ASGI view, with what the GraphQL-over-HTTP spec adds (media types, status
codes, JSON errors for malformed requests, request ids) and what a public endpoint needs:
limits on the body, the query text, JSON nesting, execution time and response size, rate
limits on callers, and websockets that are counted and end with their token."""

from __future__ import annotations

import itertools
import json
import os
import re
import uuid
from typing import Any

from cross_web import HTTPException
from graphql import GraphQLError, OperationType
from graphql import parse as parse_document
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from handlers.access import CLIENT_ADDRESS
from handlers.rate_limit import RateLimited, whole_seconds
from mediator import Context
from orderdesk import request_json
from orderdesk.bootstrap import Services
from orderdesk.deadlines import Deadlines
from orderdesk.graphiql import PAGE as GRAPHIQL_PAGE
from orderdesk.graphql_transport_ws import GraphQLTransportWSHandler
from orderdesk.legacy_graphql_ws import GraphQLWSHandler
from orderdesk.open_sockets import OpenSockets
from orderdesk.operation_limits import (
    Parse,
    QueryTooLong,
    TooManySockets,
    operation_type,
    timed_out,
    too_large,
)
from orderdesk.rate_limits import client_address, too_many_requests
from orderdesk.shared_subscriptions import SharedSubscriptions
from orderdesk.tokens import Credential, InvalidToken
from orderdesk.websocket_protocols import (
    ABORT,
    BoundedCloseAdapter,
    SocketLimits,
    find_transport_abort,
)
from schema.context import Loaders, RequestContext
from schema.errors import finish_errors

GRAPHQL_RESPONSE = "application/graphql-response+json"
SUBSCRIPTION = OperationType.SUBSCRIPTION
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
    websocket_adapter_class = BoundedCloseAdapter

    def __init__(
        self,
        *args: Any,
        max_body_bytes: int,
        max_query_length: int,
        max_response_bytes: int,
        execution_timeout: float,
        socket_limits: SocketLimits,
        open_sockets: OpenSockets,
        shared_subscriptions: SharedSubscriptions | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        # The schema's own parser where it has one (bounded and cached; schema/root.py).
        self.parse: Parse = getattr(self.schema, "parse", parse_document)
        self.max_body_bytes = max_body_bytes
        self.max_query_length = max_query_length
        self.max_response_bytes = max_response_bytes
        self.execution_timeout = execution_timeout
        self.deadlines = Deadlines(execution_timeout)
        self.socket_limits = socket_limits
        self.open_sockets = open_sockets
        self.shared_subscriptions = shared_subscriptions

    async def get_context(self, request: Request | WebSocket, response: Any) -> RequestContext:
        services: Services = request.app.state.services
        ctx = Context(correlation_id=request_id(request.headers))
        address = client_address(request.scope)
        if address is not None:
            ctx.set(CLIENT_ADDRESS, address)
        context = RequestContext(
            mediator=services.mediator,
            ctx=ctx,
            request_loaders=Loaders(services.mediator, ctx),
            issue_customer_token=services.tokens.issue_for_customer,
            request=request,
            response=response,
        )
        if isinstance(response, Response):
            response.headers["X-Request-ID"] = ctx.correlation_id
            try:
                await self.authenticate(context, request.headers.get("authorization"))
            except InvalidToken as error:
                raise HTTPException(401, str(error)) from None
        return context

    async def authenticate(self, context: RequestContext, authorization: str | None) -> None:
        """Put the caller named by `authorization` on the context, within the rate limits.

        An address that sent too many bad tokens is refused before its next token is even
        checked: guessing costs the guesser, not the server.
        """
        services: Services = context.request.app.state.services
        limits = services.rate_limits
        if not authorization:
            return
        # Without an address (a unix socket) there is nothing to count failures by.
        address = context.ctx.find(CLIENT_ADDRESS)
        if (
            limits is not None
            and address is not None
            and (wait := await limits.auth_blocked(address)) is not None
        ):
            raise RateLimited(wait)
        try:
            credential: Credential | None = services.tokens.from_header(authorization)
        except InvalidToken:
            if (
                limits is not None
                and address is not None
                and (wait := await limits.failed_auth(address)) is not None
            ):
                raise RateLimited(wait) from None
            raise
        if credential is None:
            return
        subject = credential.identity.subject
        if limits is not None and (wait := await limits.admit_identity(subject)) is not None:
            raise RateLimited(wait)
        context.ctx.identity = credential.identity
        context.credential_expires_at = credential.expires_at

    async def on_ws_connect(self, context: RequestContext) -> UnsetType | dict[str, object] | None:
        """Authenticate a websocket from its `connection_init` payload (browsers cannot set
        headers on websockets): `{"Authorization": "Bearer <token>"}`."""
        params = context.connection_params
        value = None
        if isinstance(params, dict):
            value = params.get("Authorization") or params.get("authorization")
        if value is not None and not isinstance(value, str):
            raise ConnectionRejectionError({"message": "Authorization must be a string"})
        try:
            await self.authenticate(context, value)
        except InvalidToken as error:
            raise ConnectionRejectionError({"message": str(error)}) from None
        identity = context.ctx.identity
        if identity is not None:
            # Counted before the acknowledgement: a socket over the cap is never usable.
            subject = str(getattr(identity, "subject", ""))
            if not self.open_sockets.open_for_identity(subject):
                raise TooManySockets("too many open websockets for this caller")
            context.socket_subject = subject
        # UNSET (typed Any by Strawberry) acknowledges with no payload.
        acknowledged: UnsetType = UNSET
        return acknowledged

    def decode_json(self, data: str | bytes) -> object:
        """JSON from a body or a websocket message, within what any request may hold
        (orderdesk/request_json.py); a string as long as a query is already generous."""
        return request_json.decode(
            data, max_bytes=self.max_body_bytes, max_string=self.max_query_length
        )

    def parse_json(self, data: str | bytes) -> Any:
        try:
            value = self.decode_json(data)
        except json.JSONDecodeError as error:
            raise HTTPException(400, f"Unable to parse request body as JSON: {error}") from None
        if not isinstance(value, dict):
            raise HTTPException(400, "the request body must be a JSON object")
        query = value.get("query")
        if isinstance(query, str) and len(query) > self.max_query_length:
            raise QueryTooLong(self.max_query_length)
        return value

    def parse_query_params(self, params: Any) -> dict[str, Any]:
        query = params.get("query")
        if isinstance(query, str) and len(query) > self.max_query_length:
            raise QueryTooLong(self.max_query_length)
        parsed: dict[str, Any] = super().parse_query_params(params)
        return parsed

    async def execute_operation(
        self,
        request: Request,
        request_adapter: Any,
        request_data: GraphQLRequestData | list[GraphQLRequestData],
        context: RequestContext,
        root_value: None,
        sub_response: Response,
    ) -> Any:
        """Strawberry's, with a deadline; and a subscription over HTTP is the caller's
        mistake (they are served over websockets), not the server's."""
        query = getattr(request_data, "query", None)
        # The substring test is the cheap answer for nearly every request; the parse is the
        # schema's own, bounded and cached, which execution then finds done.
        if isinstance(query, str) and "subscription" in query:
            operation_name = getattr(request_data, "operation_name", None)
            if operation_type(self.parse, query, operation_name) is SUBSCRIPTION:
                raise HTTPException(
                    400,
                    "subscriptions are served over websockets at this path (graphql-transport-ws)",
                )
        try:
            return await self.deadlines.run(
                super().execute_operation(
                    request, request_adapter, request_data, context, root_value, sub_response
                )
            )
        except TimeoutError:
            return timed_out(self.execution_timeout)

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        response = super().create_response(response_data, sub_response)
        if len(response.body) > self.max_response_bytes:
            # Encoded already: the cap bounds what goes on the wire; the cost limit is what
            # keeps such an answer from being built in the first place.
            refusal = json.dumps(too_large(len(response.body), self.max_response_bytes))
            response.body = refusal.encode()
            response.headers["content-length"] = str(len(response.body))
        return response

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(GRAPHIQL_PAGE)

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        if result.errors:
            result.errors = finish_errors(result.errors)
            codes = {(e.extensions or {}).get("code") for e in result.errors}
            if "RATE_LIMITED" in codes:
                waits = [(e.extensions or {}).get("retryAfter") for e in result.errors]
                request.state.retry_after = max(
                    (w for w in waits if isinstance(w, int | float)), default=1
                )
            if "SERVICE_UNAVAILABLE" in codes:
                request.state.unavailable = True
            if "EXECUTION_TIMEOUT" in codes:
                request.state.graphql_status = 504
            elif result.data is None and all(e.path is None for e in result.errors):
                # Nothing was executed: the document or its variables were refused.
                request.state.graphql_status = 400
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
        except QueryTooLong as error:
            response = _error_response(400, str(error), code=error.code, maxLength=error.limit)
        except RateLimited as error:
            response = too_many_requests(error.retry_after)
        except HTTPException as error:
            response = _error_response(error.status_code, error.reason)
        retry_after = getattr(request.state, "retry_after", None)
        if getattr(request.state, "unavailable", False):
            # Nothing could be answered, for a reason of the server's: every client's
            # retry logic knows 503.
            response.status_code = 503
            response.headers["Retry-After"] = "1"
        elif retry_after is not None:
            # A budget ran out inside the operation (registerCustomer's): the status says so
            # to every client, as a refusal before it would.
            response.status_code = 429
            response.headers["Retry-After"] = str(whole_seconds(retry_after))
        elif response.media_type == "application/json" and wants_graphql_response(request):
            response.headers["content-type"] = f"{GRAPHQL_RESPONSE}; charset=utf-8"
            status = getattr(request.state, "graphql_status", None)
            if status is not None:
                response.status_code = status
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


def _error_response(
    status: int, message: str, *, code: str | None = None, **extensions: object
) -> Response:
    code = code or {
        401: "UNAUTHENTICATED",
        404: "NOT_FOUND",
        405: "METHOD_NOT_ALLOWED",
        413: "PAYLOAD_TOO_LARGE",
        415: "UNSUPPORTED_MEDIA_TYPE",
    }.get(status, "BAD_REQUEST")
    body = {"errors": [GraphQLError(message, extensions={"code": code, **extensions}).formatted]}
    headers = {"Allow": "GET, POST"} if status == 405 else None
    if status == 401:
        headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    return JSONResponse(json.loads(json.dumps(body)), status_code=status, headers=headers)
