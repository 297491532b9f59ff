"""Which document an operation over a websocket runs, by the policy an HTTP request is held to
(orderdesk/persisted_documents.py): a socket is no way around persisted_only.

Both subprotocols' handlers ask here before anything runs. A payload names its document as
an HTTP body does: by text (`query`), by an automatic persisted query's hash
(`extensions.persistedQuery`, found in the trusted documents or in the store of texts
registered over HTTP) or by a trusted document's `documentId`. A text sent with its hash
runs but is not registered here: Apollo's GraphQLWsLink always sends the text, and a socket
must be no new way to fill the store.

A refusal is a list of GraphQL errors that the handler answers in its protocol's `error`
message for that operation; the socket stays open.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphql import GraphQLError
from strawberry.types import ExecutionResult

from orderdesk.operation_requests import OperationRequest, RequestRefused
from schema.errors import finish_errors


async def socket_document(
    handler: Any, payload: Mapping[str, Any]
) -> dict[str, Any] | list[GraphQLError]:
    """`payload` with `query` the text to run (`documentId` gone), or why it may not run.
    `handler` is a protocol handler, with its view and its connection's context."""
    operation = OperationRequest(
        query=payload.get("query"),
        variables=payload.get("variables"),
        operation_name=payload.get("operationName"),
        extensions=payload.get("extensions"),
        document_id=payload.get("documentId"),
    )
    try:
        chosen = await handler.view.choose_document(operation, handler.context)
    except RequestRefused as refused:
        return [refused.as_graphql()]
    if isinstance(chosen, ExecutionResult):
        return finish_errors(list(chosen.errors or ()))
    if chosen.operation.query is None:
        message = "the payload must carry the document as `query` (or a `documentId`)"
        return [GraphQLError(message, extensions={"code": "BAD_REQUEST"})]
    chosen_payload = {key: value for key, value in payload.items() if key != "documentId"}
    chosen_payload["query"] = chosen.operation.query
    return chosen_payload
