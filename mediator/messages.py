"""The bases of every message the mediator carries.

User messages subclass these, usually as ``@dataclass(frozen=True, slots=True)``; the bases
declare empty ``__slots__`` so such subclasses really are slotted. The type parameter of a
request is its result type, which is how ``await mediator.send(GetProduct(...))`` is typed
without a cast.
"""

from typing import Generic, TypeVar

# Covariant: a request answered by a ``Dog`` is also a request answered by an ``Animal``.
R_co = TypeVar("R_co", covariant=True)
T_co = TypeVar("T_co", covariant=True)


class Request(Generic[R_co]):
    """Anything sent with ``Mediator.send``: exactly one handler answers it with an ``R_co``."""

    __slots__ = ()


class Command(Request[R_co]):
    """A request that changes state (``PlaceOrder``, ``RestockProduct``)."""

    __slots__ = ()


class Query(Request[R_co]):
    """A request that only reads (``GetOrder``, ``ListProducts``)."""

    __slots__ = ()


class Notification:
    """Something that happened, published to zero or more handlers (``OrderPlaced``)."""

    __slots__ = ()


class StreamRequest(Generic[T_co]):
    """A request answered by an asynchronous iterator of ``T_co`` (a subscription)."""

    __slots__ = ()
