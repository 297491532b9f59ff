"""What each GraphQL operation over a websocket is seen as: a span when tracing is on (a
query's or mutation's for its whole run, the parent of its messages' spans; a
subscription's for its start only, as it may stay open for days), and, for a
subscription, a place in the active subscriptions gauge for as long as it runs.

Both subprotocols' handlers wrap each operation in `observed_operation`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from graphql import OperationType
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from handlers.tracing import CORRELATION_ID
from orderdesk import tracing
from orderdesk.operation_limits import chosen_operation


def _metrics(context: object) -> Any:
    request = getattr(context, "request", None)
    state = getattr(getattr(request, "app", None), "state", None)
    return getattr(getattr(state, "services", None), "operations", None)


@asynccontextmanager
async def observed_operation(
    handler: Any, transport: str, query: str, operation_name: str | None
) -> AsyncIterator[None]:
    """Around one operation of `handler` (a protocol handler, with its view and context)."""
    operation = chosen_operation(handler.view.parse, query, operation_name)
    kind = None if operation is None else operation.operation
    subscription = kind is OperationType.SUBSCRIPTION
    metrics = _metrics(handler.context) if subscription else None
    tracer = tracing.tracer()
    if metrics is not None:
        metrics.subscription_started(transport)
    try:
        if tracer is None:
            yield
            return
        type_name = kind.value if kind is not None else "operation"
        if operation is not None and operation.name is not None:
            operation_name = operation.name.value
        ctx = getattr(handler.context, "ctx", None)
        # The name a client gave its operation and its type; never its variables.
        attributes = {
            "graphql.operation.type": type_name,
            "orderdesk.transport": transport,
        }
        if operation_name:
            attributes["graphql.operation.name"] = operation_name
        if ctx is not None:
            attributes[CORRELATION_ID] = ctx.correlation_id
        name = f"{type_name} {operation_name}" if operation_name else type_name
        if subscription:
            tracer.start_span(name, kind=SpanKind.SERVER, attributes=attributes).end()
            yield
            return
        with tracer.start_as_current_span(
            name,
            kind=SpanKind.SERVER,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ):
            try:
                yield
            except Exception as error:
                trace.get_current_span().set_status(StatusCode.ERROR, type(error).__name__)
                raise
    finally:
        if metrics is not None:
            metrics.subscription_ended(transport)
