"""What bounds one operation, whichever transport carries it: the length of its text, its
running time, the size of its answer, and the sockets one caller may hold."""

from __future__ import annotations

from collections.abc import Callable

from graphql import (
    DocumentNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    get_operation_ast,
)
from strawberry.types import ExecutionResult


class TooManySockets(Exception):
    """The caller holds as many websockets as it may."""


class QueryTooLong(Exception):
    code = "QUERY_TOO_LONG"

    def __init__(self, limit: int) -> None:
        super().__init__(f"the query text exceeds {limit} characters")
        self.limit = limit

    def as_graphql(self) -> GraphQLError:
        return GraphQLError(str(self), extensions={"code": self.code, "maxLength": self.limit})


Parse = Callable[[str], DocumentNode]


EXECUTION_TIMEOUT = "EXECUTION_TIMEOUT"


def chosen_operation(
    parse: Parse, query: str, operation_name: str | None
) -> OperationDefinitionNode | None:
    """The document's chosen operation; None if it does not parse or names no operation
    (execution then reports that as it always does). `parse` is the schema's, which bounds
    and caches it, so execution finds it done."""
    try:
        return get_operation_ast(parse(query), operation_name)
    except GraphQLError:
        return None


def operation_type(parse: Parse, query: str, operation_name: str | None) -> OperationType | None:
    """What the document's chosen operation is (see `chosen_operation`)."""
    operation = chosen_operation(parse, query, operation_name)
    return None if operation is None else operation.operation


STOPPED = (
    "the operation did not finish within {seconds:g} s and was stopped; a mutation stopped "
    "so may or may not have been applied (retrying it with the same idempotencyKey is safe)"
)


def timed_out(seconds: float, message: str = STOPPED) -> ExecutionResult:
    """EXECUTION_TIMEOUT, with `message` (formatted with `seconds`) saying what became of it."""
    extensions = {"code": EXECUTION_TIMEOUT, "seconds": seconds}
    error = GraphQLError(message.format(seconds=seconds), extensions=extensions)
    return ExecutionResult(data=None, errors=[error])


def too_large(size: int, limit: int) -> dict[str, object]:
    message = f"the response ({size} bytes) exceeds {limit} bytes; ask for fewer fields or rows"
    extensions = {"code": "RESPONSE_TOO_LARGE", "bytes": size, "maxBytes": limit}
    return {"data": None, "errors": [GraphQLError(message, extensions=extensions).formatted]}
