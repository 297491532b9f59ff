"""What one HTTP request asks for: one operation, or a batch of them (a JSON array, as
Apollo's BatchHttpLink sends), each checked for shape before any of them runs.

An operation names its document by text (`query`), by an automatic persisted query's hash
(`extensions.persistedQuery`) or by a trusted document's id (`documentId`, the
GraphQL-over-HTTP persisted documents proposal). Strawberry's request data has no place for
the last, hence `OperationRequest`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cross_web import HTTPException
from graphql import GraphQLError
from strawberry.http import GraphQLRequestData, GraphQLRequestProtocol


class RequestRefused(Exception):
    """A request refused before anything ran, with its HTTP status and error code."""

    def __init__(self, message: str, *, code: str, status: int = 400, **extensions: object):
        super().__init__(message)
        self.code = code
        self.status = status
        self.extensions = extensions

    def as_graphql(self) -> GraphQLError:
        return GraphQLError(str(self), extensions={"code": self.code, **self.extensions})


@dataclass
class OperationRequest(GraphQLRequestData):
    document_id: str | None = None


def operation_request(
    data: Mapping[str, object], protocol: GraphQLRequestProtocol = "http"
) -> OperationRequest:
    """One operation from a body or the query string; HTTPException 400 for a wrong shape
    (Strawberry's own messages, where it has one)."""
    query = data.get("query")
    if not isinstance(query, str | None):
        raise HTTPException(
            400, "The GraphQL operation's `query` must be a string or null, if provided."
        )
    variables = data.get("variables")
    if not isinstance(variables, dict | None):
        raise HTTPException(
            400, "The GraphQL operation's `variables` must be an object or null, if provided."
        )
    extensions = data.get("extensions")
    if not isinstance(extensions, dict | None):
        raise HTTPException(
            400, "The GraphQL operation's `extensions` must be an object or null, if provided."
        )
    operation_name = data.get("operationName")
    if not isinstance(operation_name, str | None):
        raise HTTPException(
            400, "The GraphQL operation's `operationName` must be a string or null, if provided."
        )
    document_id = data.get("documentId")
    if not isinstance(document_id, str | None):
        raise HTTPException(400, "The GraphQL operation's `documentId` must be a string.")
    return OperationRequest(
        query=query,
        variables=variables,
        operation_name=operation_name,
        extensions=extensions,
        protocol=protocol,
        document_id=document_id,
    )


def batch_of(
    items: list[object], *, max_batch: int, protocol: GraphQLRequestProtocol = "http"
) -> list[OperationRequest]:
    """A batch's operations, in order; the whole batch is refused for any bad element."""
    if max_batch == 0:
        raise RequestRefused(
            "the request body must be a JSON object: this server does not accept batches "
            "(arrays of operations); send one operation per request",
            code="BATCH_NOT_ALLOWED",
        )
    if not items:
        raise RequestRefused("the batch holds no operation", code="BAD_REQUEST")
    if len(items) > max_batch:
        raise RequestRefused(
            f"a batch may hold at most {max_batch} operations; this one holds {len(items)}",
            code="BATCH_TOO_LARGE",
            maxBatch=max_batch,
        )
    operations = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise RequestRefused(
                f"operation {index} of the batch is not a JSON object",
                code="BAD_REQUEST",
                batchIndex=index,
            )
        try:
            operation = operation_request(item, protocol)
        except HTTPException as error:
            raise RequestRefused(
                f"operation {index} of the batch: {error.reason}",
                code="BAD_REQUEST",
                batchIndex=index,
            ) from None
        if (
            operation.query is None
            and operation.document_id is None
            and not (operation.extensions and "persistedQuery" in operation.extensions)
        ):
            raise RequestRefused(
                f"operation {index} of the batch has no query",
                code="BAD_REQUEST",
                batchIndex=index,
            )
        operations.append(operation)
    return operations
