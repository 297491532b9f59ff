"""Where an application declares its handlers and behaviors, once, at start-up."""

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar, overload

from mediator.context import Context
from mediator.errors import ConfigurationError
from mediator.mediator import Mediator
from mediator.messages import Command, Notification, Query, Request, StreamRequest
from mediator.names import qualified_name
from mediator.publishers import Publisher, Sequential
from mediator.registrations import Recovery, Registrations, Scoped, Subscription
from mediator.types import Next, NextStream

M = TypeVar("M")
Req = TypeVar("Req", bound=Request[Any])
Note = TypeVar("Note", bound=Notification)
Str = TypeVar("Str", bound=StreamRequest[Any])
E = TypeVar("E", bound=Exception)

# The bases themselves are never sent, so ``build(require=...)`` does not ask them for handlers.
_FRAMEWORK_BASES: frozenset[type] = frozenset(
    {Request, Command, Query, Notification, StreamRequest}
)


class Registry:
    """Collects registrations, then ``build()`` checks them and composes a ``Mediator``.

    Every inconsistency is a ``ConfigurationError`` here, at start-up, naming the types and
    handlers involved, so none surfaces on the first request that meets it.
    """

    def __init__(self) -> None:
        self._handlers: dict[type, Callable[..., Any]] = {}
        self._subscriptions: list[Subscription] = []
        self._streams: dict[type, Callable[..., Any]] = {}
        self._behaviors: list[Scoped] = []
        self._stream_behaviors: list[Scoped] = []
        self._recoveries: list[Recovery] = []

    def handle(
        self, request_type: type[Req], handler: Callable[[Req, Context], Awaitable[Any]]
    ) -> None:
        """Make ``handler`` the one handler of ``request_type`` and of its subclasses that have
        no handler of their own."""
        _require_subclass(request_type, Request, "handle", "a Request (Command or Query)")
        _require_callable(handler, "handle")
        existing = self._handlers.get(request_type)
        if existing is not None:
            raise ConfigurationError(
                f"{qualified_name(request_type)} already has a handler, "
                f"{qualified_name(existing)}; cannot add {qualified_name(handler)}"
            )
        self._handlers[request_type] = handler

    def subscribe(
        self,
        notification_type: type[Note],
        handler: Callable[[Note, Context], Awaitable[Any]],
        *,
        name: str | None = None,
    ) -> None:
        """Add ``handler`` to those that receive ``notification_type`` and its subclasses.

        ``name`` (the handler's qualified name by default) is how failures, ``describe()``
        and ``publish(only=...)`` name it; a name given is one handler's, whatever it
        subscribes to.
        """
        _require_subclass(notification_type, Notification, "subscribe", "a Notification")
        _require_callable(handler, "subscribe")
        chosen = name is not None
        name = name or qualified_name(handler)
        for subscription in self._subscriptions:
            if (
                subscription.notification_type is notification_type
                and subscription.handler is handler
            ):
                raise ConfigurationError(
                    f"{name} is already subscribed to {qualified_name(notification_type)}"
                )
            if chosen and subscription.name == name and subscription.handler is not handler:
                raise ConfigurationError(f"two notification handlers are named {name}")
        self._subscriptions.append(Subscription(notification_type, handler, name))

    def stream(
        self, request_type: type[Str], handler: Callable[[Str, Context], AsyncIterator[Any]]
    ) -> None:
        """Make ``handler`` (an async generator function) the one stream handler of the type."""
        _require_subclass(request_type, StreamRequest, "stream", "a StreamRequest")
        _require_callable(handler, "stream")
        existing = self._streams.get(request_type)
        if existing is not None:
            raise ConfigurationError(
                f"{qualified_name(request_type)} already has a stream handler, "
                f"{qualified_name(existing)}; cannot add {qualified_name(handler)}"
            )
        self._streams[request_type] = handler

    @overload
    def behavior(self, behavior: Callable[[Any, Next[Any], Context], Awaitable[Any]]) -> None: ...

    @overload
    def behavior(
        self,
        behavior: Callable[[M, Next[Any], Context], Awaitable[Any]],
        *,
        applies_to: type[M],
    ) -> None: ...

    def behavior(
        self,
        behavior: Callable[[Any, Next[Any], Context], Awaitable[Any]],
        *,
        applies_to: type = object,
    ) -> None:
        """Wrap every message that is an instance of ``applies_to`` in ``behavior``.

        The first behavior registered is the outermost. ``object`` (the default) means every
        sent request and every notification handler; ``Request``, ``Command``, ``Query``,
        ``Notification`` or any message type narrow it. For a notification, the behavior
        wraps each handler separately. Streams have their own: ``stream_behavior``.
        """
        _require_type(applies_to, "behavior")
        _require_callable(behavior, "behavior")
        self._behaviors.append(Scoped(behavior, applies_to))

    @overload
    def stream_behavior(
        self, behavior: Callable[[Any, NextStream[Any], Context], AsyncIterator[Any]]
    ) -> None: ...

    @overload
    def stream_behavior(
        self,
        behavior: Callable[[M, NextStream[Any], Context], AsyncIterator[Any]],
        *,
        applies_to: type[M],
    ) -> None: ...

    def stream_behavior(
        self,
        behavior: Callable[[Any, NextStream[Any], Context], AsyncIterator[Any]],
        *,
        applies_to: type = StreamRequest,
    ) -> None:
        """Wrap every stream whose request is an instance of ``applies_to`` in ``behavior``
        (an async generator function that may transform or drop items); first is outermost."""
        _require_type(applies_to, "stream_behavior")
        _require_callable(behavior, "stream_behavior")
        self._stream_behaviors.append(Scoped(behavior, applies_to))

    @overload
    def on_exception(
        self,
        exception_type: type[E],
        handler: Callable[[E, Any, Context], Awaitable[Any]],
    ) -> None: ...

    @overload
    def on_exception(
        self,
        exception_type: type[E],
        handler: Callable[[E, M, Context], Awaitable[Any]],
        *,
        applies_to: type[M],
    ) -> None: ...

    def on_exception(
        self,
        exception_type: type[E],
        handler: Callable[[E, Any, Context], Awaitable[Any]],
        *,
        applies_to: type = Request,
    ) -> None:
        """Turn ``exception_type`` raised while handling an ``applies_to`` request into
        ``send()``'s result: whatever ``handler`` returns.

        Exception handlers wrap outside every behavior, so a transaction behavior still sees
        the exception and rolls back. The most specific exception class registered wins;
        an exception nothing matches propagates unchanged. Notifications are not covered:
        their handlers' failures are isolated and reported by ``PublishError``.
        """
        if not (isinstance(exception_type, type) and issubclass(exception_type, Exception)):
            # CancelledError, KeyboardInterrupt and SystemExit are BaseExceptions: turning
            # them into results would break cancellation and shutdown.
            raise ConfigurationError(
                f"on_exception({exception_type!r}, {qualified_name(handler)}): "
                "the exception type must be a subclass of Exception"
            )
        _require_type(applies_to, "on_exception")
        _require_callable(handler, "on_exception")
        for recovery in self._recoveries:
            if recovery.exception_type is exception_type and recovery.applies_to is applies_to:
                raise ConfigurationError(
                    f"{qualified_name(exception_type)} raised for {qualified_name(applies_to)} "
                    f"already has an exception handler, {qualified_name(recovery.handler)}; "
                    f"cannot add {qualified_name(handler)}"
                )
        self._recoveries.append(Recovery(exception_type, handler, applies_to))

    def build(
        self,
        *,
        publisher: Publisher | None = None,
        expect: Iterable[type] = (),
        require: Iterable[type] = (),
        within: Iterable[str] = (),
    ) -> Mediator:
        """Check the registrations and compose every pipeline into a ``Mediator``.

        ``expect``: message types that must have a handler (a subscriber, for a
        notification). ``require``: base classes every concrete subclass of which, among the
        classes defined so far, must have one; a class still generic in its result type or
        abstract counts as a base, not as a message. ``within``: package or module names
        that limit ``require`` to the classes defined in them; without it, ``require`` sees
        every subclass in the process, a test suite's own messages included.
        ``publisher``: how ``publish`` runs handlers, ``Sequential()`` by default.
        Raises one ``ConfigurationError`` listing every message type that lacks a handler.
        """
        registrations = Registrations(
            handlers=dict(self._handlers),
            subscriptions=tuple(self._subscriptions),
            streams=dict(self._streams),
            behaviors=tuple(self._behaviors),
            stream_behaviors=tuple(self._stream_behaviors),
            recoveries=tuple(self._recoveries),
        )
        wanted = list(expect)
        packages = tuple(within)
        for base in require:
            _require_type(base, "build(require=...)")
            wanted.extend(
                cls
                for cls in _concrete_subclasses(base)
                if not packages or _defined_within(cls, packages)
            )
        missing = _without_handler(registrations, wanted)
        if missing:
            raise ConfigurationError(
                "no handler registered for "
                + ", ".join(qualified_name(message_type) for message_type in missing)
            )
        return Mediator(registrations, publisher if publisher is not None else Sequential())


def _has_handler(registrations: Registrations, message_type: type) -> bool:
    if not isinstance(message_type, type):
        raise ConfigurationError(f"build(expect=...): {message_type!r} is not a message type")
    if issubclass(message_type, StreamRequest):
        return registrations.stream_handler_for(message_type) is not None
    if issubclass(message_type, Notification):
        return bool(registrations.subscribers_for(message_type))
    return registrations.handler_for(message_type) is not None


def _concrete_subclasses(base: type) -> list[type]:
    found: list[type] = []
    stack: list[type] = list(base.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        still_generic = bool(getattr(cls, "__parameters__", ()))
        if cls not in _FRAMEWORK_BASES and not still_generic and not inspect.isabstract(cls):
            found.append(cls)
    return found


def _defined_within(cls: type, packages: tuple[str, ...]) -> bool:
    module = cls.__module__
    return any(module == name or module.startswith(f"{name}.") for name in packages)


def _without_handler(registrations: Registrations, wanted: list[type]) -> list[type]:
    # ``@dataclass(slots=True)`` replaces the class it decorates, and the replaced one lingers
    # in its base's __subclasses__() until the garbage collector frees it. Such twins share a
    # qualified name, so types are grouped by name: a handler for any of them serves the name.
    by_name: dict[str, list[type]] = {}
    for message_type in wanted:
        by_name.setdefault(qualified_name(message_type), []).append(message_type)
    return [
        group[0]
        for _, group in sorted(by_name.items())
        if not any(_has_handler(registrations, message_type) for message_type in group)
    ]


def _require_subclass(cls: object, base: type, method: str, what: str) -> None:
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigurationError(f"{method}({cls!r}, ...): the message type must be {what}")


def _require_type(cls: object, method: str) -> None:
    if not isinstance(cls, type):
        raise ConfigurationError(f"{method}: applies_to must be a class, not {cls!r}")


def _require_callable(fn: object, method: str) -> None:
    if not callable(fn):
        raise ConfigurationError(f"{method}: {fn!r} is not callable")
