"""Strawberry's ASGI view, with what the GraphQL-over-HTTP spec adds (media types, status
codes, JSON errors for malformed requests, request ids), what frontend clients expect
(Apollo's automatic persisted queries, trusted documents, batches) and what a public endpoint
needs: limits on the body, the query text, JSON nesting, execution time and response size,
rate limits on callers, and websockets that are counted and end with their token."""

from __future__ import annotations

import json
from typing import Any, cast

from cross_web import AsyncHTTPRequestAdapter, HTTPException
from graphql import OperationType
from graphql import parse as parse_document
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.parse_content_type import parse_content_type
from strawberry.schema.exceptions import CannotGetOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from handlers.access import CLIENT_ADDRESS, identity_of
from mediator import Context
from orderdesk import request_json
from orderdesk.batch_execution import BATCH_DEADLINE_FACTOR, execute_batch
from orderdesk.bootstrap import Services
from orderdesk.caller_authentication import authenticate
from orderdesk.deadlines import Deadlines
from orderdesk.graphiql import PAGE as GRAPHIQL_PAGE
from orderdesk.graphql_transport_ws import GraphQLTransportWSHandler
from orderdesk.legacy_graphql_ws import GraphQLWSHandler
from orderdesk.open_sockets import OpenSockets
from orderdesk.operation_choice import (
    SUBSCRIPTIONS_ELSEWHERE,
    holds_several_operations,
    several_operations,
    unknown_operation,
)
from orderdesk.operation_limits import (
    Parse,
    QueryTooLong,
    TooManySockets,
    operation_type,
    timed_out,
)
from orderdesk.operation_requests import (
    OperationRequest,
    batch_of,
    operation_request,
)
from orderdesk.operation_results import refused_before_execution, shown
from orderdesk.persisted_documents import Chosen, PersistedDocuments
from orderdesk.rate_limits import client_address
from orderdesk.request_ids import request_id
from orderdesk.request_reading import limited, query_parameters
from orderdesk.response_status import (
    REFUSALS,
    cap_body,
    note_outcome,
    refusal_of,
    set_status,
    wants_graphql_response,
    within_cap,
)
from orderdesk.shared_subscriptions import SharedSubscriptions
from orderdesk.tokens import InvalidToken
from orderdesk.websocket_protocols import (
    ABORT,
    BoundedCloseAdapter,
    SocketLimits,
    find_transport_abort,
)
from schema.context import Loaders, RequestContext

SUBSCRIPTION = OperationType.SUBSCRIPTION


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
        self.batch_deadlines = Deadlines(execution_timeout * BATCH_DEADLINE_FACTOR)
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
        """Put the caller on the context (orderdesk/caller_authentication.py)."""
        await authenticate(context, authorization)

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
        return query_parameters(params, self.decode_json)

    def should_render_graphql_ide(self, request: Any) -> bool:
        # A GET naming its document by hash or id has no `query`, and is no browser's visit.
        if not super().should_render_graphql_ide(request):
            return False  # before the query string is parsed: every POST ends here
        params = request.query_params
        return params.get("extensions") is None and params.get("documentId") is None

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
        one after another, in order (orderdesk/batch_execution.py). A subscription over HTTP
        is the caller's mistake (they are served over websockets and SSE), not the server's."""
        if isinstance(request_data, list):
            return await execute_batch(
                self, request, request_adapter, request_data, context, sub_response
            )
        chosen = await self.choose(request, request_data, context)
        if isinstance(chosen, ExecutionResult):
            return chosen
        refused = self.refusal_of_unnamed(chosen.operation)
        if refused is not None:
            return refused
        if self.is_subscription(chosen.operation):
            raise HTTPException(400, SUBSCRIPTIONS_ELSEWHERE)
        try:
            result = await self.deadlines.run(
                super().execute_operation(
                    request, request_adapter, chosen.operation, context, root_value, sub_response
                )
            )
        except TimeoutError:
            return timed_out(self.execution_timeout)
        except HTTPException as error:
            raise HTTPException(error.status_code, self.reason_of(error)) from None
        await self.register(request, chosen, result)
        return result

    async def choose(
        self, request: Request, operation: GraphQLRequestData, context: RequestContext
    ) -> Chosen | ExecutionResult:
        """The document `operation` runs, by the persisted documents policy (a trusted
        document's id, an APQ hash known to the store, persisted_only), over HTTP and SSE
        alike; QueryTooLong for a text over the limit, RequestRefused for a malformed hash."""
        if not isinstance(operation, OperationRequest):
            operation = OperationRequest(
                operation.query,
                operation.variables,
                operation.operation_name,
                operation.extensions,
                operation.protocol,
            )
        chosen = await self.choose_document(operation, context)
        if isinstance(chosen, Chosen):
            # A stored or trusted text is held to the limits as a sent one is, every time.
            self._check_length(chosen.operation.query)
        return chosen

    async def choose_document(
        self, operation: OperationRequest, context: RequestContext
    ) -> Chosen | ExecutionResult:
        """The persisted documents policy for this caller, over every transport (the
        websocket handlers ask it too: orderdesk/socket_documents.py)."""
        services: Services = context.request.app.state.services
        identity = identity_of(context.ctx)
        return await self.persisted_documents.choose(
            operation,
            store=services.persisted_queries,
            staff=identity is not None and identity.is_staff,
        )

    async def register(self, request: Request, chosen: Chosen, result: object) -> None:
        """Store a new persisted query's text once it has run: a text that does not parse or
        validate never takes room in the store."""
        if chosen.register is None or chosen.operation.query is None:
            return
        if not isinstance(result, ExecutionResult) or refused_before_execution(result):
            return
        services: Services = request.app.state.services
        if services.persisted_queries is not None:
            await services.persisted_queries.remember(chosen.register, chosen.operation.query)

    def refusal_of_unnamed(self, operation: GraphQLRequestData) -> ExecutionResult | None:
        """The refusal of a document of several operations sent with no operationName."""
        query = operation.query
        if (
            operation.operation_name is None
            and query
            and holds_several_operations(self.parse, query)
        ):
            return several_operations()
        return None

    @staticmethod
    def reason_of(error: HTTPException) -> str:
        """Strawberry's reason for refusing an operation, with a name the document does not
        have echoed only in part."""
        cause = error.__cause__
        if isinstance(cause, CannotGetOperationTypeError) and cause.operation_name is not None:
            return unknown_operation(cause.operation_name)
        return error.reason

    def is_subscription(self, operation: GraphQLRequestData) -> bool:
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
        limit = self.max_response_bytes
        if isinstance(response_data, list):
            # Each answer of a batch has the cap of its own; the batch keeps its shape.
            capped = [within_cap(each, self.encode_json(each), limit) for each in response_data]
            return super().create_response(capped, sub_response)
        return cap_body(super().create_response(response_data, sub_response), limit)

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(GRAPHIQL_PAGE)

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        # A request error, in the spec's words: execution never started, so the answer has
        # no `data` entry at all (application/json keeps `"data": null`).
        answer = shown(result, request_error_data=not wants_graphql_response(request))
        note_outcome(request, result)
        return cast("GraphQLHTTPResponse", answer)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                scope[ABORT] = find_transport_abort(send)
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive=limited(scope, receive, self.max_body_bytes))
        try:
            response: Response = await self.run(request)
        except REFUSALS as error:
            response = refusal_of(error)
        set_status(request, response)
        await response(scope, receive, send)
