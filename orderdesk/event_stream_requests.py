"""What an event stream request asks for, read and refused before any stream starts: its
operation from the query string (GET) or the JSON body (POST), the kind of that operation
(a mutation is never run by a GET), and the places it takes under the caps on what one
address and one caller may hold open (counted together with their websockets).

A refusal is a plain 4xx with a JSON GraphQL error, the view's own (orderdesk/
response_status.py): graphql-sse's client reports it rather than retrying it.
"""

from __future__ import annotations

from collections.abc import Callable

from cross_web import HTTPException
from graphql import GraphQLSyntaxError, OperationType, get_operation_ast
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Scope
from strawberry.types import ExecutionResult

from orderdesk.accepted_streams import EVENT_STREAM
from orderdesk.graphql_view import GraphQLView
from orderdesk.operation_choice import SEVERAL_OPERATIONS, unknown_operation
from orderdesk.operation_requests import OperationRequest, operation_request
from orderdesk.operation_results import shown
from orderdesk.rate_limits import client_address
from orderdesk.request_reading import query_parameters
from orderdesk.response_status import error_response
from schema.context import RequestContext


class Refused(Exception):
    """A request answered with a 4xx before any stream starts."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def refusal(
    status: int,
    message: str,
    code: str,
    *,
    headers: dict[str, str] | None = None,
    **extensions: object,
) -> Refused:
    return Refused(error_response(status, message, code=code, headers=headers, **extensions))


def asks_for_event_stream(headers: Headers) -> bool:
    """Whether the Accept header names text/event-stream (with any parameters, q above 0)."""
    for part in headers.get("accept", "").split(","):
        media_type, *parameters = (piece.strip().lower() for piece in part.split(";"))
        if media_type == EVENT_STREAM and "q=0" not in parameters:
            return True
    return False


async def asked_operation(view: GraphQLView, request: Request) -> OperationRequest:
    """The operation from the query string (GET) or the JSON body (POST), read as the view
    reads it; HTTPException (or BodyTooLarge, from the request's receive) if it is not one."""
    if request.method == "GET":
        return operation_request(query_parameters(request.query_params, view.decode_json), "sse")
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise HTTPException(415, "the body of a POST must be JSON (Content-Type: application/json)")
    value = view.parse_json(await request.body())
    if isinstance(value, list):
        raise HTTPException(400, "batches are not served as event streams")
    return operation_request(value, "sse")


def operation_kind(
    view: GraphQLView, query: str, operation_name: str | None, *, method: str
) -> OperationType:
    """What the document's chosen operation is; Refused if it does not parse, names no
    operation, or is a mutation sent with GET."""
    try:
        # The schema's parse: bounded by the token limit, and cached for execution.
        document = view.parse(query)
    except GraphQLSyntaxError as error:
        refused = shown(ExecutionResult(data=None, errors=[error]))
        raise Refused(JSONResponse(refused, 400)) from None
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        message = unknown_operation(operation_name) if operation_name else SEVERAL_OPERATIONS
        raise refusal(400, message, "BAD_REQUEST")
    if operation.operation is OperationType.MUTATION and method == "GET":
        raise refusal(
            405, "mutations are sent with POST", "METHOD_NOT_ALLOWED", headers={"Allow": "POST"}
        )
    return operation.operation


def hold(view: GraphQLView, scope: Scope, context: RequestContext) -> Callable[[], None]:
    """Count the stream against its address's and its caller's caps (the same counts as
    their websockets); what gives the places back. Refused (429) over either cap."""
    sockets = view.open_sockets
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
