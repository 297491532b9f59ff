"""Strawberry's ASGI view, with what the GraphQL-over-HTTP spec adds (media types, status
codes, JSON errors for malformed requests, request ids), what frontend clients expect
(Apollo's automatic persisted queries, trusted documents, batches) and what a public endpoint
needs: limits on the body, the query text, JSON nesting, execution time and response size,
rate limits on callers, and websockets that are counted and end with their token."""

from __future__ import annotations

import json
from typing import Any, cast

from cross_web import AsyncHTTPRequestAdapter, HTTPException
from graphql import GraphQLError, OperationType
from graphql import parse as parse_document
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.parse_content_type import parse_content_type
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from handlers.access import CLIENT_ADDRESS, identity_of
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
from orderdesk.operation_requests import (
    OperationRequest,
    RequestRefused,
    batch_of,
    operation_request,
)
from orderdesk.persisted_documents import Chosen, PersistedDocuments
from orderdesk.rate_limits import client_address, too_many_requests
from orderdesk.request_ids import request_id
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
        max_batch: int = 0,
        persisted_documents: PersistedDocuments | None = None,
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
        self.max_batch = max_batch
        self.persisted_documents = persisted_documents or PersistedDocuments(
            trusted=None, persisted_only=False, staff_excepted=False
        )

    async def get_context(self, request: Request | WebSocket, response: Any) -> RequestContext:
        services: Services = request.app.state.services
        # The request's id (orderdesk/request_ids.py, which answers it in X-Request-ID).
        ctx = Context(correlation_id=request_id(request.scope))
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
        if not isinstance(value, dict | list):
            raise HTTPException(400, "the request body must be a JSON object")
        return value

    def parse_query_params(self, params: Any) -> dict[str, Any]:
        parsed: dict[str, Any] = dict(params)
        for name in ("variables", "extensions"):
            if parsed.get(name):
                try:
                    parsed[name] = self.decode_json(parsed[name])
                except json.JSONDecodeError as error:
                    raise HTTPException(400, f"the {name} parameter is not JSON: {error}") from None
        return parsed

    def should_render_graphql_ide(self, request: Any) -> bool:
        # A GET naming its document by hash or id has no `query`, and is no browser's visit.
        params = request.query_params
        return (
            super().should_render_graphql_ide(request)
            and params.get("extensions") is None
            and params.get("documentId") is None
        )

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        """Strawberry's, reading `documentId` too, checking each operation of a batch for
        shape (and the batch for size) before any runs, and each text for length."""
        content_type, _ = parse_content_type(request.content_type or "")
        transport = self._get_stream_transport_from_headers(request.headers)
        protocol = transport.protocol if transport else "http"
        data: object
        if request.method == "GET":
            data = self.parse_query_params(request.query_params)
        elif "application/json" in content_type:
            data = self.parse_json(await request.get_body())
        elif self.multipart_uploads_enabled and content_type == "multipart/form-data":
            data = await self.parse_multipart(request)
        else:
            raise HTTPException(400, "Unsupported content type")
        if isinstance(data, list):
            if transport is not None:
                raise HTTPException(400, transport.batching_error)
            operations: list[GraphQLRequestData] = [
                *batch_of(data, max_batch=self.max_batch, protocol=protocol)
            ]
        elif isinstance(data, dict):
            operations = [operation_request(data, protocol)]
        else:
            raise HTTPException(400, "the request body must be a JSON object")
        for operation in operations:
            self._check_length(operation.query)
        return operations if isinstance(data, list) else operations[0]

    def _check_length(self, query: str | None) -> None:
        if query is not None and len(query) > self.max_query_length:
            raise QueryTooLong(self.max_query_length)

    async def execute_operation(
        self,
        request: Request,
        request_adapter: Any,
        request_data: GraphQLRequestData | list[GraphQLRequestData],
        context: RequestContext,
        root_value: None,
        sub_response: Response,
    ) -> Any:
        """Strawberry's, with persisted documents and a deadline; a batch runs its operations
        one after another, in order. A subscription over HTTP is the caller's mistake (they
        are served over websockets), not the server's."""
        if isinstance(request_data, list):
            return await self._execute_batch(
                request, request_adapter, request_data, context, sub_response
            )
        chosen = await self._choose(request, request_data, context)
        if isinstance(chosen, ExecutionResult):
            return chosen
        if self._is_subscription(chosen.operation):
            raise HTTPException(
                400,
                "subscriptions are served over websockets at this path (graphql-transport-ws) "
                "and as Server-Sent Events (Accept: text/event-stream, graphql-sse)",
            )
        try:
            result = await self.deadlines.run(
                super().execute_operation(
                    request, request_adapter, chosen.operation, context, root_value, sub_response
                )
            )
        except TimeoutError:
            return timed_out(self.execution_timeout)
        await self._register(request, chosen, result)
        return result

    async def _execute_batch(
        self,
        request: Request,
        request_adapter: Any,
        operations: list[GraphQLRequestData],
        context: RequestContext,
        sub_response: Response,
    ) -> list[ExecutionResult]:
        """Each operation counts on its own: against the rate limits (the request itself
        was counted once), with its own deadline, loaders and, in create_response, its own
        cap on the answer's size. Sequential, not gathered: a mutation then a query reads
        the mutation's write, and mutations apply in the order they were sent."""
        request.state.batch = True
        await self._spend_for_batch(request, context, len(operations))
        chosen = [await self._choose(request, operation, context) for operation in operations]
        for index, each in enumerate(chosen):
            if isinstance(each, Chosen) and self._is_subscription(each.operation):
                raise RequestRefused(
                    f"operation {index} of the batch is a subscription: subscriptions are "
                    "served over websockets at this path (graphql-transport-ws)",
                    code="BAD_REQUEST",
                    batchIndex=index,
                )
        results = []
        for each in chosen:
            if isinstance(each, ExecutionResult):
                results.append(each)
                continue
            context.start_operation()
            try:
                result = await self.deadlines.run(
                    self.execute_single(
                        request, request_adapter, sub_response, context, None, each.operation
                    )
                )
            except TimeoutError:
                result = timed_out(self.execution_timeout)
            except HTTPException as error:
                # An operation name the document does not have, say: that operation's error.
                error_ = GraphQLError(error.reason, extensions={"code": "BAD_REQUEST"})
                result = ExecutionResult(data=None, errors=[error_])
            await self._register(request, each, result)
            results.append(result)
        return results

    async def _spend_for_batch(self, request: Request, context: RequestContext, size: int) -> None:
        services: Services = request.app.state.services
        limits = services.rate_limits
        if limits is None or size <= 1:
            return
        extra = size - 1  # the request itself was counted by RateLimitMiddleware and get_context
        address = client_address(request.scope)
        if address is not None and (wait := await limits.admit_address(address, cost=extra)):
            raise RateLimited(wait)
        identity = identity_of(context.ctx)
        if identity is not None and (
            wait := await limits.admit_identity(identity.subject, cost=extra)
        ):
            raise RateLimited(wait)

    async def _choose(
        self, request: Request, operation: GraphQLRequestData, context: RequestContext
    ) -> Chosen | ExecutionResult:
        if not isinstance(operation, OperationRequest):
            operation = OperationRequest(
                operation.query,
                operation.variables,
                operation.operation_name,
                operation.extensions,
                operation.protocol,
            )
        services: Services = request.app.state.services
        identity = identity_of(context.ctx)
        chosen = await self.persisted_documents.choose(
            operation,
            store=services.persisted_queries,
            staff=identity is not None and identity.is_staff,
        )
        if isinstance(chosen, Chosen):
            # A stored or trusted text is held to the limits as a sent one is, every time.
            self._check_length(chosen.operation.query)
        return chosen

    async def _register(self, request: Request, chosen: Chosen, result: object) -> None:
        """Store a new persisted query's text once it has run: a text that does not parse or
        validate never takes room in the store."""
        if chosen.register is None or chosen.operation.query is None:
            return
        if not isinstance(result, ExecutionResult) or _refused_before_execution(result):
            return
        services: Services = request.app.state.services
        if services.persisted_queries is not None:
            await services.persisted_queries.remember(chosen.register, chosen.operation.query)

    def _is_subscription(self, operation: GraphQLRequestData) -> bool:
        query = operation.query
        # The substring test is the cheap answer for nearly every request; the parse is the
        # schema's own, bounded and cached, which execution then finds done.
        return (
            isinstance(query, str)
            and "subscription" in query
            and operation_type(self.parse, query, operation.operation_name) is SUBSCRIPTION
        )

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        if isinstance(response_data, list):
            # Each answer of a batch has the cap of its own; the batch keeps its shape.
            capped = [self._within_cap(answer) for answer in response_data]
            return super().create_response(capped, sub_response)
        response = super().create_response(response_data, sub_response)
        if len(response.body) > self.max_response_bytes:
            # Encoded already: the cap bounds what goes on the wire; the cost limit is what
            # keeps such an answer from being built in the first place.
            refusal = json.dumps(too_large(len(response.body), self.max_response_bytes))
            response.body = refusal.encode()
            response.headers["content-length"] = str(len(response.body))
        return response

    def _within_cap(self, answer: GraphQLHTTPResponse) -> GraphQLHTTPResponse:
        encoded = self.encode_json(answer)
        size = len(encoded.encode() if isinstance(encoded, str) else encoded)
        if size <= self.max_response_bytes:
            return answer
        return cast("GraphQLHTTPResponse", too_large(size, self.max_response_bytes))

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
            elif _refused_before_execution(result):
                request.state.graphql_status = 400
                if wants_graphql_response(request):
                    # A request error, in the spec's words: execution never started, so the
                    # answer has no `data` entry at all (application/json keeps `"data": null`).
                    processed = await super().process_result(request, result)
                    processed.pop("data", None)
                    return processed
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
        except RequestRefused as error:
            response = _error_response(
                error.status, str(error), code=error.code, **error.extensions
            )
        except HTTPException as error:
            response = _error_response(error.status_code, error.reason)
        self._set_status(request, response)
        await response(scope, receive, send)

    @staticmethod
    def _set_status(request: Request, response: Response) -> None:
        """The status and media type that what happened inside the request calls for."""
        retry_after = getattr(request.state, "retry_after", None)
        if getattr(request.state, "batch", False):
            # One status cannot tell several answers apart (and Apollo's BatchHttpLink fails
            # every operation of a batch answered non-2xx): each answer carries its own errors.
            if response.media_type == "application/json" and wants_graphql_response(request):
                response.headers["content-type"] = f"{GRAPHQL_RESPONSE}; charset=utf-8"
        elif getattr(request.state, "unavailable", False):
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


def _refused_before_execution(result: ExecutionResult) -> bool:
    """Nothing was executed: the document, its variables or its persisted hash were refused
    (an error inside execution has a path; a timeout is told apart by its code)."""
    return result.data is None and all(e.path is None for e in result.errors or ())


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
