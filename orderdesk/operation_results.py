"""What a client is shown of an operation's result, whichever transport carries it.

Every result passes through the error policy here (schema/errors.py `finish_errors`:
faults masked, every error given a code), also the errors the schema's extensions never
saw: a syntax error raised in the parse hook, a refusal of the persisted documents policy,
a deadline. A request error (nothing was executed) has no `data` entry, the GraphQL spec's
rule; only HTTP's application/json compatibility rule keeps `"data": null` for it.
"""

from __future__ import annotations

from graphql import GraphQLError
from strawberry.types import ExecutionResult

from orderdesk.operation_limits import EXECUTION_TIMEOUT
from schema.errors import finish_errors


def refused_before_execution(result: ExecutionResult) -> bool:
    """Nothing was executed: the document, its variables or its persisted hash were refused,
    or a deadline stopped it (an error inside execution has a path)."""
    return result.data is None and all(e.path is None for e in result.errors or ())


def is_request_error(result: ExecutionResult) -> bool:
    """A refusal before execution started; a deadline stopped one that had started."""
    return (
        bool(result.errors)
        and refused_before_execution(result)
        and not any(code_of(error) == EXECUTION_TIMEOUT for error in result.errors or ())
    )


def code_of(error: GraphQLError) -> object:
    return (error.extensions or {}).get("code")


def shown(result: ExecutionResult, *, request_error_data: bool = False) -> dict[str, object]:
    """`result` as a client is sent it (the shape of a GraphQL response); its errors are
    left on `result` as sent, for a transport that decides a status by their codes. With
    `request_error_data`, a request error keeps `"data": null`."""
    if result.errors:
        result.errors = finish_errors(result.errors)
    payload: dict[str, object] = {}
    if request_error_data or not is_request_error(result):
        payload["data"] = result.data
    if result.errors:
        payload["errors"] = [error.formatted for error in result.errors]
    if result.extensions:
        payload["extensions"] = result.extensions
    return payload
