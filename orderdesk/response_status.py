"""The status, media type and size of the GraphQL view's HTTP answers, and the JSON answer
of a request refused before anything ran (which an event stream's refusals share).

What happened inside a request (a budget run out, the database down, a deadline, a request
error) is noted on `request.state` as its result is shown, and the status set from it once
the response is built: Strawberry builds the body first and gives no other place between.
"""

from __future__ import annotations

import json
from typing import cast

from cross_web import HTTPException
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

from handlers.rate_limit import RateLimited, whole_seconds
from orderdesk.operation_limits import EXECUTION_TIMEOUT, QueryTooLong, too_large
from orderdesk.operation_requests import RequestRefused
from orderdesk.operation_results import code_of, is_request_error
from orderdesk.rate_limits import too_many_requests
from orderdesk.request_reading import BodyTooLarge

GRAPHQL_RESPONSE = "application/graphql-response+json"

DEFAULT_CODES = {
    401: "UNAUTHENTICATED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


def wants_graphql_response(request: Request) -> bool:
    """Whether the client asked for application/graphql-response+json (and so its status codes).

    Clients that ask only for application/json (most today) get it, with 200 for every
    well-formed response, as the spec's compatibility rules require.
    """
    return GRAPHQL_RESPONSE in request.headers.get("accept", "")


def error_response(
    status: int,
    message: str,
    *,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: object,
) -> JSONResponse:
    """A request refused before anything ran: `status` and one GraphQL error with `code`."""
    code = code or DEFAULT_CODES.get(status, "BAD_REQUEST")
    body = {"errors": [GraphQLError(message, extensions={"code": code, **extensions}).formatted]}
    if headers is None and status == 405:
        headers = {"Allow": "GET, POST"}
    if headers is None and status == 401:
        headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    return JSONResponse(json.loads(json.dumps(body)), status_code=status, headers=headers)


def refused_response(refused: RequestRefused) -> JSONResponse:
    """The answer to a request refused with a status, a code and extensions of its own."""
    body = {"errors": [refused.as_graphql().formatted]}
    return JSONResponse(json.loads(json.dumps(body)), status_code=refused.status)


REFUSALS = (BodyTooLarge, QueryTooLong, RateLimited, RequestRefused, HTTPException)
"""What refuses a request before anything runs, over HTTP and SSE alike (`refusal_of`)."""


def refusal_of(error: Exception) -> Response:
    """The answer to one of REFUSALS."""
    if isinstance(error, BodyTooLarge):
        return error_response(413, str(error))
    if isinstance(error, QueryTooLong):
        return error_response(400, str(error), code=error.code, maxLength=error.limit)
    if isinstance(error, RateLimited):
        return too_many_requests(error.retry_after)
    if isinstance(error, RequestRefused):
        return refused_response(error)
    assert isinstance(error, HTTPException)
    return error_response(error.status_code, error.reason)


def note_outcome(request: Request, result: ExecutionResult) -> None:
    """What `result`'s (finished) errors call for, for `set_status`."""
    if not result.errors:
        return
    codes = {code_of(error) for error in result.errors}
    if "RATE_LIMITED" in codes:
        waits = [(e.extensions or {}).get("retryAfter") for e in result.errors]
        request.state.retry_after = max((w for w in waits if isinstance(w, int | float)), default=1)
    if "SERVICE_UNAVAILABLE" in codes:
        request.state.unavailable = True
    if EXECUTION_TIMEOUT in codes:
        request.state.graphql_status = 504
    elif is_request_error(result):
        request.state.graphql_status = 400


def set_status(request: Request, response: Response) -> None:
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


def cap_body(response: Response, limit: int) -> Response:
    """`response`, or the refusal of an answer over `limit` bytes in its place.

    Encoded already: the cap bounds what goes on the wire; the cost limit is what keeps
    such an answer from being built in the first place."""
    if len(response.body) > limit:
        refusal = json.dumps(too_large(len(response.body), limit))
        response.body = refusal.encode()
        response.headers["content-length"] = str(len(response.body))
    return response


def within_cap(
    answer: GraphQLHTTPResponse, encoded: str | bytes, limit: int
) -> GraphQLHTTPResponse:
    """One answer of a batch, or the refusal of it when its encoding is over `limit`."""
    size = len(encoded.encode() if isinstance(encoded, str) else encoded)
    if size <= limit:
        return answer
    return cast("GraphQLHTTPResponse", too_large(size, limit))
