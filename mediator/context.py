"""The per-request context that travels with every message through the pipeline."""

import asyncio
import time
import uuid
from typing import Generic, Protocol, TypeVar, cast

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class ContextKey(Generic[T]):
    """A typed key for values a behavior puts on the context for the ones inside it.

    Keys compare by identity, so two modules that pick the same name never collide; define
    each key once, at module level: ``UNIT_OF_WORK = ContextKey[UnitOfWork]("unit_of_work")``.
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"ContextKey({self.name!r})"

    def _unset(self) -> T:
        """What reading this key without a value does: a ``KeyError`` naming the key."""
        raise KeyError(f"no value for {self!r} in this context")


class _Readable(Protocol[T_co]):
    """How ``get`` and ``find`` see a key: covariantly, so ``ctx.get(KEY)`` with a
    ``ContextKey[list[str]]`` may go where an ``Iterable[str]`` is expected. ``set`` takes the
    invariant ``ContextKey`` itself, so storing a value of the wrong type is still an error."""

    def _unset(self) -> T_co: ...


class Context:
    """What one incoming request (an HTTP request, a websocket operation) carries along.

    ``identity`` is the caller, ``None`` when anonymous; its type is the application's choice.
    ``deadline`` is absolute, in the running loop's ``time()`` units; ``None`` means none.
    Behaviors hand values inward with typed keys: ``ctx.set(KEY, value)``, ``ctx.get(KEY)``.
    """

    __slots__ = ("_correlation_id", "_items", "deadline", "identity")

    def __init__(
        self,
        *,
        correlation_id: str | None = None,
        identity: object | None = None,
        deadline: float | None = None,
    ) -> None:
        self._correlation_id = correlation_id
        self.identity = identity
        self.deadline = deadline
        self._items: dict[object, object] | None = None

    @property
    def correlation_id(self) -> str:
        """The id that ties log lines of one request together; a new uuid4 hex by default."""
        # Made on first read: a uuid costs more than a whole send(), and most contexts
        # created for an internal call are never logged.
        if self._correlation_id is None:
            self._correlation_id = uuid.uuid4().hex
        return self._correlation_id

    @correlation_id.setter
    def correlation_id(self, value: str) -> None:
        self._correlation_id = value

    def set(self, key: ContextKey[T], value: T) -> None:
        """Store ``value`` under ``key`` for the behaviors and handler inside this one."""
        if self._items is None:
            self._items = {}
        self._items[key] = value

    def get(self, key: _Readable[T]) -> T:
        """The value stored under ``key``; ``KeyError`` naming the key if none was set."""
        items = self._items
        if items is None or key not in items:
            return key._unset()
        return cast(T, items[key])

    def find(self, key: _Readable[T]) -> T | None:
        """The value stored under ``key``, or ``None`` if none was set."""
        if self._items is None:
            return None
        return cast(T | None, self._items.get(key))

    def copy(self) -> "Context":
        """A context with the same correlation id, identity, deadline and values; values set
        on the copy later stay on the copy."""
        # Slots set directly, not through __init__: publish copies a context per handler.
        copy = object.__new__(Context)
        copy._correlation_id = self.correlation_id
        copy.identity = self.identity
        copy.deadline = self.deadline
        copy._items = dict(self._items) if self._items else None
        return copy

    def with_timeout(self, seconds: float) -> "Context":
        """A ``copy()`` whose deadline is the earlier of this one's and ``seconds`` from now."""
        copy = self.copy()
        candidate = _now() + seconds
        copy.deadline = candidate if self.deadline is None else min(self.deadline, candidate)
        return copy

    def __repr__(self) -> str:
        return (
            f"Context(correlation_id={self.correlation_id!r}, identity={self.identity!r}, "
            f"deadline={self.deadline!r})"
        )


HANDLER_NAME = ContextKey[str]("handler name")
"""On the context a notification handler gets: its own name, as ``subscribe`` gave it (so a
handler can key what it does by who it is, a reactor's effects by handler and event)."""


def _now() -> float:
    """The clock deadlines are measured on: the running loop's, as ``asyncio.timeout_at``."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        # No loop yet (a context built at start-up): asyncio's default loops use this clock.
        return time.monotonic()
