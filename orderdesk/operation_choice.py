"""Which operation of its document a request runs, refused in the same words over plain
HTTP and over an event stream: a document of several operations must name one in
`operationName` (the GraphQL spec's rule; Strawberry would run the first), a name the
document does not have is echoed back only in part, and a subscription over plain HTTP is
pointed to the transports that serve it."""

from __future__ import annotations

from graphql import GraphQLError, OperationDefinitionNode
from strawberry.types import ExecutionResult

from orderdesk.operation_limits import Parse

SUBSCRIPTIONS_ELSEWHERE = (
    "subscriptions are served over websockets at this path (graphql-transport-ws) and as "
    "Server-Sent Events (Accept: text/event-stream, graphql-sse)"
)
SEVERAL_OPERATIONS = "the document holds several operations: name one in `operationName`"
MAX_ECHOED = 100
"""Characters of a client's operation name repeated in an error: enough to recognise it,
and an error is not a way to make the server send back what it was sent."""


def echoed(name: str) -> str:
    """`name` as an error repeats it: quoted, and cut at MAX_ECHOED characters."""
    if len(name) <= MAX_ECHOED:
        return f'"{name}"'
    return f'"{name[:MAX_ECHOED]}…" ({len(name)} characters)'


def unknown_operation(name: str) -> str:
    return f"the document has no operation named {echoed(name)}"


def several_operations() -> ExecutionResult:
    """The answer to a document of several operations with no `operationName`: nothing
    ran, as for a document that does not validate."""
    error = GraphQLError(SEVERAL_OPERATIONS, extensions={"code": "BAD_REQUEST"})
    return ExecutionResult(data=None, errors=[error])


def holds_several_operations(parse: Parse, query: str) -> bool:
    """Whether the document has more than one operation. Each operation of such a document
    is named (an anonymous one must be alone, and validation refuses it otherwise), so a
    text with fewer than two operation keywords is answered without parsing; the parse is
    the schema's, bounded and cached, which execution then finds done."""
    if query.count("query") + query.count("mutation") + query.count("subscription") < 2:
        return False
    try:
        document = parse(query)
    except GraphQLError:
        return False  # execution reports the syntax error as it always does
    operations = 0
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            operations += 1
    return operations > 1
