"""Composing handlers, behaviors and exception handlers into one callable per message type.

Everything here runs at ``build()`` (and once for each subclass first seen at runtime), never
per call. The composed callables are what ``send`` calls, so they are written for speed:
a behavior's ``next`` is a bound method of a link made here, on a tuple ``(message, ctx)``
made once per call, which costs less than a closure over both (no cells to create).
"""

import inspect
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from types import MethodType
from typing import Any, TypeAlias

from mediator.context import HANDLER_NAME, Context
from mediator.names import qualified_name
from mediator.types import Delivery

logger = logging.getLogger("mediator")

Pipeline: TypeAlias = Callable[[Any, Context], Coroutine[Any, Any, Any]]
"""``(message, ctx) -> coroutine``: a handler with everything that wraps it."""

StreamPipeline: TypeAlias = Callable[[Any, Context, list[AsyncIterator[Any]]], AsyncIterator[Any]]
"""``(message, ctx, opened) -> iterator``; every iterator it opens is appended to ``opened``,
so the caller can close them all, innermost included, when the consumer stops early."""


def request_pipeline(
    handler: Callable[..., Any],
    behaviors: Sequence[Callable[..., Any]],
    recoveries: Mapping[type[Exception], Callable[..., Any]],
) -> Pipeline:
    """The handler inside its behaviors (first = outermost), inside its exception handlers."""
    pipeline = chain(behaviors, as_coroutine_function(handler))
    if recoveries:
        pipeline = recover(pipeline, recoveries)
    return pipeline


def chain(behaviors: Sequence[Callable[..., Any]], handler: Pipeline) -> Pipeline:
    """``behaviors[0](message, next, ctx)`` where ``next`` runs the rest, down to ``handler``."""
    if not behaviors:
        return handler
    coroutine_behaviors = [as_coroutine_function(behavior) for behavior in behaviors]

    def innermost(call: tuple[Any, Context]) -> Coroutine[Any, Any, Any]:
        return handler(call[0], call[1])

    inner: Callable[[tuple[Any, Context]], Coroutine[Any, Any, Any]] = innermost
    for behavior in reversed(coroutine_behaviors[1:]):
        inner = _link(behavior, inner)
    outermost = coroutine_behaviors[0]

    def pipeline(message: Any, ctx: Context) -> Coroutine[Any, Any, Any]:
        return outermost(message, MethodType(inner, (message, ctx)), ctx)

    return pipeline


def _link(
    behavior: Callable[..., Coroutine[Any, Any, Any]],
    inner: Callable[[tuple[Any, Context]], Coroutine[Any, Any, Any]],
) -> Callable[[tuple[Any, Context]], Coroutine[Any, Any, Any]]:
    def link(call: tuple[Any, Context]) -> Coroutine[Any, Any, Any]:
        return behavior(call[0], MethodType(inner, call), call[1])

    return link


def recover(
    pipeline: Pipeline, recoveries: Mapping[type[Exception], Callable[..., Any]]
) -> Pipeline:
    """Turn an exception from anywhere in ``pipeline`` into a result, by the most specific
    registered exception type; anything unmatched propagates unchanged.

    Only ``Exception`` is caught, so cancellation and interpreter exits pass through.
    """
    resolved: dict[type, Callable[..., Any] | None] = {}

    def handler_for(exc_type: type) -> Callable[..., Any] | None:
        try:
            return resolved[exc_type]
        except KeyError:
            found = next((recoveries[c] for c in exc_type.__mro__ if c in recoveries), None)
            resolved[exc_type] = found
            return found

    async def recovering(message: Any, ctx: Context) -> Any:
        try:
            return await pipeline(message, ctx)
        except Exception as exc:
            handler = handler_for(type(exc))
            if handler is None:
                raise
            return await handler(exc, message, ctx)

    return recovering


def delivery(
    name: str, handler: Callable[..., Any], behaviors: Sequence[Callable[..., Any]]
) -> Delivery:
    """One notification handler inside its own copy of the behaviors, isolated: a failure is
    logged with the handler's name, noted on the exception and returned, not raised.

    Each handler also gets its own copy of the context: what a behavior sets for one handler
    (its unit of work, say) is not seen, or overwritten, by another running beside it.
    """
    pipeline = chain(behaviors, as_coroutine_function(handler))

    async def deliver(notification: Any, ctx: Context) -> Exception | None:
        own = ctx.copy()
        own.set(HANDLER_NAME, name)
        try:
            await pipeline(notification, own)
        except Exception as exc:
            exc.add_note(f"raised by notification handler {name}")
            logger.error(
                "notification handler %s failed on %s (correlation id %s)",
                name,
                qualified_name(type(notification)),
                ctx.correlation_id,
                exc_info=exc,
            )
            return exc
        return None

    return deliver


def stream_pipeline(
    handler: Callable[..., Any], behaviors: Sequence[Callable[..., Any]]
) -> StreamPipeline:
    """The stream handler inside its stream behaviors, first registered outermost."""

    def innermost(message: Any, ctx: Context, opened: list[AsyncIterator[Any]]) -> Any:
        items = handler(message, ctx)
        opened.append(items)
        return items

    pipeline: StreamPipeline = innermost
    for behavior in reversed(behaviors):
        pipeline = _stream_link(behavior, pipeline)
    return pipeline


def _stream_link(behavior: Callable[..., Any], inner: StreamPipeline) -> StreamPipeline:
    def link(message: Any, ctx: Context, opened: list[AsyncIterator[Any]]) -> Any:
        items = behavior(message, lambda: inner(message, ctx, opened), ctx)
        opened.append(items)
        return items

    return link


def as_coroutine_function(fn: Callable[..., Any]) -> Callable[..., Coroutine[Any, Any, Any]]:
    """``fn`` itself if calling it makes a coroutine, else an ``async def`` that awaits it.

    ``send`` returns what the pipeline returns, so it must be a real coroutine (which
    ``asyncio.create_task`` accepts) even when a handler returns some other awaitable.
    """
    # A callable object with an ``async def __call__`` makes coroutines too.
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__):
        return fn

    async def awaiting(*args: Any) -> Any:
        return await fn(*args)

    return awaiting
