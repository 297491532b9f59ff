"""Spans for messages: one per message through the mediator, saying how it ended and, for a
refusal or a failure, which behavior (or the handler) ended it.

Registered only when tracing is on (orderdesk/tracing.py); otherwise none of this runs. The
span carries the message's type and kind, never its fields: they may hold what a caller
would not want in a trace (emails, addresses, keys).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from opentelemetry.trace import SpanKind, StatusCode, Tracer

from domain.errors import DomainError
from mediator import Command, Context, ContextKey, Next, Query

CORRELATION_ID = "orderdesk.correlation_id"
"""The span attribute every span of a request carries: the request's id (X-Request-ID).
Defined here, the lowest layer that makes spans, for orderdesk/ to import."""
HANDLER = "handler"

Behavior = Callable[[Any, Next[Any], Context], Awaitable[Any]]

_ENDED_BY = ContextKey[tuple[str, BaseException]]("ended_by")
"""The innermost behavior that raised (rather than passed on) the error a message ended with."""


def behavior_name(behavior: Callable[..., Any]) -> str:
    qualname = getattr(behavior, "__qualname__", type(behavior).__qualname__)
    return f"{behavior.__module__}.{qualname.replace('.<locals>', '')}"


def trace_messages(tracer: Tracer) -> Behavior:
    """The outermost behavior: a span per message, a child of the request's."""

    async def traced(message: object, call_next: Next[object], ctx: Context) -> object:
        name = type(message).__name__
        kind = (
            "command"
            if isinstance(message, Command)
            else "query"
            if isinstance(message, Query)
            else "request"
        )
        with tracer.start_as_current_span(
            name,
            kind=SpanKind.INTERNAL,
            attributes={
                "orderdesk.message.type": name,
                "orderdesk.message.kind": kind,
                CORRELATION_ID: ctx.correlation_id,
            },
            # An error's text may quote the input; its type says enough.
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                result = await call_next()
            except Exception as error:
                ended = ctx.find(_ENDED_BY)
                by = ended[0] if ended is not None and ended[1] is error else HANDLER
                refused = isinstance(error, DomainError)
                span.set_attributes(
                    {
                        "orderdesk.outcome": "refused" if refused else "failed",
                        "orderdesk.refused_by" if refused else "orderdesk.failed_by": by,
                        "orderdesk.error.type": type(error).__name__,
                    }
                )
                if not refused:
                    span.set_status(StatusCode.ERROR, type(error).__name__)
                raise
            span.set_attribute("orderdesk.outcome", "ok")
            return result

    return traced


def observed(behavior: Behavior) -> Behavior:
    """`behavior`, noting on the context when an error starts with it (it raised one that
    did not come from inside it), so that the message's span can name it."""
    name = behavior_name(behavior)

    @functools.wraps(behavior)
    async def observing(message: object, call_next: Next[object], ctx: Context) -> object:
        passed: BaseException | None = None

        async def inner() -> object:
            nonlocal passed
            try:
                return await call_next()
            except Exception as error:
                passed = error
                raise

        try:
            return await behavior(message, inner, ctx)
        except Exception as error:
            if error is not passed:
                ctx.set(_ENDED_BY, (name, error))
            raise

    return observing
