"""The mediator: sends requests, publishes notifications and opens streams."""

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Collection, Coroutine
from functools import partial
from typing import Any, TypeVar

from mediator.context import Context
from mediator.errors import DeadlineExceeded, NoHandlerError, PublishError
from mediator.messages import Notification, Request, StreamRequest
from mediator.names import qualified_name
from mediator.pipelines import (
    Pipeline,
    StreamPipeline,
    delivery,
    request_pipeline,
    stream_pipeline,
)
from mediator.publishers import Publisher
from mediator.registrations import Registrations
from mediator.routes import Route, describe, describe_text
from mediator.types import Delivery

R = TypeVar("R")
T = TypeVar("T")


class Mediator:
    """Routes each message to its handler(s) through the behaviors that apply to it.

    Made by ``Registry.build()``, which has already composed a pipeline for every registered
    type; a subclass first seen at runtime gets its own, composed once and cached.
    """

    __slots__ = ("_deliveries", "_pipelines", "_publisher", "_registrations", "_streams")

    def __init__(self, registrations: Registrations, publisher: Publisher) -> None:
        self._registrations = registrations
        self._publisher = publisher
        self._pipelines: dict[type, Pipeline] = {}
        self._deliveries: dict[type, tuple[tuple[str, ...], tuple[Delivery, ...]]] = {}
        self._streams: dict[type, StreamPipeline] = {}
        for message_type in registrations.handlers:
            self._request_pipeline(message_type)
        for subscription in registrations.subscriptions:
            self._notification_deliveries(subscription.notification_type)
        for message_type in registrations.streams:
            self._stream_pipeline(message_type)

    def send(self, request: Request[R], ctx: Context | None = None) -> Coroutine[Any, Any, R]:
        """Run the one handler of ``request``'s type and return its result: ``await`` it.

        Raises (when awaited) ``NoHandlerError`` if no handler serves the type or a base,
        ``DeadlineExceeded`` if ``ctx.deadline`` passes first, or whatever the pipeline
        raises that no exception handler turned into a result.
        """
        # A plain function returning the pipeline's coroutine, not an ``async def``: one
        # coroutine fewer per call is half the cost of a send without behaviors.
        if ctx is None:
            ctx = Context()
        elif ctx.deadline is not None:
            return self._before_deadline(self._send_now, request, ctx)
        pipeline: Pipeline | None = self._pipelines.get(request.__class__)
        if pipeline is None:
            return self._send_now(request, ctx)
        return pipeline(request, ctx)

    def publish(
        self,
        notification: Notification,
        ctx: Context | None = None,
        *,
        only: Collection[str] | None = None,
    ) -> Coroutine[Any, Any, None]:
        """Deliver ``notification`` to every handler of its type and of its bases: ``await`` it.

        Every handler runs even when others fail; afterwards ``PublishError`` holds all the
        failures. ``DeadlineExceeded`` if ``ctx.deadline`` passes first. ``only`` names the
        handlers to deliver to, leaving out the rest: a caller that keeps each handler's
        progress apart (a reactor with a checkpoint per handler) delivers to those behind.
        """
        if ctx is None:
            ctx = Context()
        elif ctx.deadline is not None:
            return self._before_deadline(partial(self._publish_now, only=only), notification, ctx)
        return self._publish_now(notification, ctx, only=only)

    def subscribers(self, notification_type: type) -> tuple[str, ...]:
        """The names of the handlers ``publish`` delivers a ``notification_type`` to."""
        names, _ = self._deliveries.get(notification_type) or self._notification_deliveries(
            notification_type
        )
        return names

    def stream(
        self, request: StreamRequest[T], ctx: Context | None = None
    ) -> AsyncGenerator[T, None]:
        """Open the stream handler of ``request``'s type, inside its stream behaviors.

        ``NoHandlerError`` is raised here, at once. Closing the returned generator
        (``aclose()``, or leaving ``async with contextlib.aclosing(...)``) or cancelling its
        consumer closes every generator of the pipeline, the handler's included. A deadline
        on ``ctx`` bounds the whole iteration: no item comes after it.
        """
        if ctx is None:
            ctx = Context()
        pipeline = self._streams.get(request.__class__) or self._stream_pipeline(request.__class__)
        return _iterate(pipeline, request, ctx)

    def describe(self) -> list[Route]:
        """Every registered message type with its handlers, behaviors and exception handlers."""
        return describe(self._registrations)

    def describe_text(self) -> str:
        """``describe()`` as a readable table (for ``orderdesk handlers``)."""
        return describe_text(self.describe())

    async def _send_now(self, request: Request[R], ctx: Context) -> R:
        pipeline = self._pipelines.get(request.__class__) or self._request_pipeline(
            request.__class__
        )
        result: R = await pipeline(request, ctx)
        return result

    async def _publish_now(
        self, notification: Notification, ctx: Context, only: Collection[str] | None = None
    ) -> None:
        names, deliveries = self._deliveries.get(
            notification.__class__
        ) or self._notification_deliveries(notification.__class__)
        if only is not None:
            chosen = [i for i, name in enumerate(names) if name in only]
            names = tuple(names[i] for i in chosen)
            deliveries = tuple(deliveries[i] for i in chosen)
        if not deliveries:
            return
        outcomes = await self._publisher(deliveries, notification, ctx)
        failures = [
            (name, exc) for name, exc in zip(names, outcomes, strict=True) if exc is not None
        ]
        if failures:
            raise PublishError(
                f"{len(failures)} of {len(deliveries)} handlers of "
                f"{qualified_name(notification.__class__)} failed: "
                + ", ".join(name for name, _ in failures),
                failures,
            )

    async def _before_deadline(self, run: Pipeline, message: object, ctx: Context) -> Any:
        deadline = ctx.deadline
        assert deadline is not None
        if asyncio.get_running_loop().time() >= deadline:
            raise DeadlineExceeded(
                f"deadline passed before {qualified_name(message.__class__)} was handled "
                f"(correlation id {ctx.correlation_id})"
            )
        timeout = asyncio.timeout_at(deadline)
        try:
            async with timeout:
                return await run(message, ctx)
        except TimeoutError as exc:
            # Only our own timeout becomes DeadlineExceeded; a handler's TimeoutError from
            # its own client passes through as it is.
            if not timeout.expired():
                raise
            raise DeadlineExceeded(
                f"deadline passed while handling {qualified_name(message.__class__)} "
                f"(correlation id {ctx.correlation_id})"
            ) from exc

    def _request_pipeline(self, message_type: type) -> Pipeline:
        registrations = self._registrations
        handler = registrations.handler_for(message_type)
        if handler is None:
            raise NoHandlerError(message_type)
        pipeline = request_pipeline(
            handler,
            registrations.behaviors_for(message_type),
            registrations.recoveries_for(message_type),
        )
        self._pipelines[message_type] = pipeline
        return pipeline

    def _notification_deliveries(
        self, notification_type: type
    ) -> tuple[tuple[str, ...], tuple[Delivery, ...]]:
        registrations = self._registrations
        subscriptions = registrations.subscribers_for(notification_type)
        behaviors = registrations.behaviors_for(notification_type)
        route = (
            tuple(s.name for s in subscriptions),
            tuple(delivery(s.name, s.handler, behaviors) for s in subscriptions),
        )
        self._deliveries[notification_type] = route
        return route

    def _stream_pipeline(self, message_type: type) -> StreamPipeline:
        registrations = self._registrations
        handler = registrations.stream_handler_for(message_type)
        if handler is None:
            raise NoHandlerError(message_type, kind="stream")
        pipeline = stream_pipeline(handler, registrations.stream_behaviors_for(message_type))
        self._streams[message_type] = pipeline
        return pipeline


async def _iterate(
    pipeline: StreamPipeline, request: object, ctx: Context
) -> AsyncGenerator[Any, None]:
    opened: list[AsyncIterator[Any]] = []
    deadline = ctx.deadline
    try:
        if deadline is None:
            async for item in pipeline(request, ctx, opened):
                yield item
            return
        if asyncio.get_running_loop().time() >= deadline:
            raise DeadlineExceeded(
                f"deadline passed before stream {qualified_name(request.__class__)} opened "
                f"(correlation id {ctx.correlation_id})"
            )
        items = pipeline(request, ctx, opened)
        while True:
            # One timeout per item, never held across a ``yield``: a timeout open while the
            # consumer runs would cancel the consumer's own code.
            timeout = asyncio.timeout_at(deadline)
            try:
                async with timeout:
                    item = await anext(items)
            except StopAsyncIteration:
                return
            except TimeoutError as exc:
                if not timeout.expired():
                    raise
                raise DeadlineExceeded(
                    f"deadline passed while streaming {qualified_name(request.__class__)} "
                    f"(correlation id {ctx.correlation_id})"
                ) from exc
            yield item
    finally:
        await _close(opened)


async def _close(opened: list[AsyncIterator[Any]]) -> None:
    """Close every generator the pipeline opened, outermost first.

    A behavior's ``async for item in next()`` does not close the inner generator when the
    behavior itself is closed; Python would leave that to the garbage collector, later,
    so a handler's ``finally`` (releasing a subscription, a connection) would run late.
    """
    error: Exception | None = None
    for items in opened:
        aclose = getattr(items, "aclose", None)
        if aclose is None:
            continue
        try:
            await aclose()
        except Exception as exc:  # close the rest, then report the first failure
            error = error or exc
    if error is not None:
        raise error
