"""The span processor that gives each span its parent's correlation id, if it has none.

Spans made by libraries (SQLAlchemy's statements) know nothing of requests; their parent,
a message's or a request's span, does. Imported only when tracing is on (it needs the SDK).
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from handlers.tracing import CORRELATION_ID


class CorrelationIds(SpanProcessor):
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        attributes = span.attributes
        if attributes is not None and CORRELATION_ID in attributes:
            return
        parent = trace.get_current_span(parent_context)
        if isinstance(parent, ReadableSpan):
            inherited = (parent.attributes or {}).get(CORRELATION_ID)
            if inherited is not None:
                span.set_attribute(CORRELATION_ID, inherited)
