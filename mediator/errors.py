"""The exceptions the mediator raises; each message names the types and handlers involved."""

from collections.abc import Sequence
from typing import Self

from mediator.names import qualified_name


class MediatorError(Exception):
    """Base of every error the mediator itself raises."""


class ConfigurationError(MediatorError):
    """The registrations are inconsistent; raised at start-up, never on a request."""


class NoHandlerError(MediatorError):
    """A message was sent or streamed whose type (and bases) has no handler."""

    def __init__(self, message_type: type, kind: str = "request") -> None:
        super().__init__(
            f"no {kind} handler registered for {qualified_name(message_type)} or any of its bases"
        )
        self.message_type = message_type


class DeadlineExceeded(MediatorError, TimeoutError):
    """The context's deadline passed before the handler finished (or before it started).

    A ``TimeoutError`` too, so code that already handles timeouts handles this one.
    """


class PublishError(ExceptionGroup[Exception], MediatorError):
    """One or more notification handlers failed; the others still ran.

    ``failures`` pairs each handler's qualified name with what it raised; every exception
    also carries a note naming its handler, so tracebacks say where it came from.
    """

    failures: list[tuple[str, BaseException]]

    def __new__(cls, message: str, failures: Sequence[tuple[str, Exception]]) -> Self:
        error = super().__new__(cls, message, [exc for _, exc in failures])
        error.failures = list(failures)
        return error

    def __init__(self, message: str, failures: Sequence[tuple[str, Exception]]) -> None:
        super().__init__(message, [exc for _, exc in failures])

    # typeshed types derive() for any BaseException; a PublishError only ever holds Exceptions.
    def derive(self, excs: Sequence[Exception]) -> "PublishError":  # type: ignore[override]
        # ``except*`` and ``split`` build partial groups through derive(); keep the type and
        # the names of the failures that went into the part.
        kept = [
            (name, exc)
            for name, exc in self.failures
            if isinstance(exc, Exception) and any(exc is part for part in excs)
        ]
        return PublishError(self.message, kept)
