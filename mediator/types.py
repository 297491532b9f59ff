"""The shapes of the callables the mediator composes, as type aliases.

Handlers and behaviors are plain async callables; nothing needs to subclass anything:

- request handler:       ``async def h(message: M, ctx: Context) -> R``
- notification handler:  ``async def h(note: N, ctx: Context) -> None``
- stream handler:        ``async def h(message: M, ctx: Context) -> AsyncIterator[T]`` (yields)
- behavior:              ``async def b(message: M, next: Next[R], ctx: Context) -> R``
- stream behavior:       ``async def b(message: M, next: NextStream[T], ctx: Context)`` (yields)
- exception handler:     ``async def e(exc: E, message: M, ctx: Context) -> object``
"""

from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeAlias, TypeVar

from mediator.context import Context

M = TypeVar("M")
R = TypeVar("R")
T = TypeVar("T")
E = TypeVar("E", bound=Exception)

Next: TypeAlias = Callable[[], Awaitable[R]]
"""What a behavior calls to run the rest of the pipeline; call it once, or again to retry."""

NextStream: TypeAlias = Callable[[], AsyncIterator[T]]
"""What a stream behavior calls to open the rest of the stream pipeline."""

RequestHandler: TypeAlias = Callable[[M, Context], Awaitable[R]]
NotificationHandler: TypeAlias = Callable[[M, Context], Awaitable[object]]
StreamHandler: TypeAlias = Callable[[M, Context], AsyncIterator[T]]
Behavior: TypeAlias = Callable[[M, Next[Any], Context], Awaitable[Any]]
StreamBehavior: TypeAlias = Callable[[M, NextStream[Any], Context], AsyncIterator[Any]]
ExceptionHandler: TypeAlias = Callable[[E, M, Context], Awaitable[object]]

Delivery: TypeAlias = Callable[[Any, Context], Coroutine[Any, Any, Exception | None]]
"""One notification handler wrapped in its behaviors and isolated: it never raises an
``Exception`` but returns it (``None`` on success); cancellation still propagates."""
