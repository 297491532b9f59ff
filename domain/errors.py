"""The ways a domain operation refuses: expected outcomes, reported to the caller as data."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class DomainError(Exception):
    """A refusal the caller can act on; never a fault of the service.

    Each refusal carries what it is about as data (the entity's kind and id, the numbers),
    and a message naming the entity by its id here, which is for the service's own logs.
    An API words what its clients read from the data, in its own names for the entities:
    the ids of the domain are not theirs.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class FieldIssue:
    """One invalid field: `path` names it from the input's root, e.g. ("lines", "2", "quantity").

    `message` is shown to the client beside that field, as it is: the rule in the domain's
    words ("a quantity is at least 1"), never a library's, and never naming an internal id.
    """

    path: tuple[str, ...]
    message: str


@runtime_checkable
class ChecksItself(Protocol):
    """A value object that knows its own rules: a command carrying one has them checked with
    its other rules, before its handler runs, and the domain checks them again when using it."""

    def issues(self) -> list[FieldIssue]:
        """What is wrong with the value, each issue by the path of the field within it."""
        ...


class ValidationFailed(DomainError):
    """Every problem with an input at once, so a form can show them all."""

    def __init__(self, issues: Iterable[FieldIssue]) -> None:
        self.issues = tuple(issues)
        summary = "; ".join(f"{'.'.join(i.path) or 'input'}: {i.message}" for i in self.issues)
        super().__init__(f"Invalid input: {summary}")


class NotFound(DomainError):
    """No `kind` has `entity_id`, or none the caller may see."""

    def __init__(self, kind: str, entity_id: str) -> None:
        self.kind = kind
        self.entity_id = entity_id
        super().__init__(f"{kind} {entity_id!r} does not exist")


class VersionConflict(DomainError):
    """The caller decided on a version of the entity that is no longer current."""

    def __init__(self, kind: str, entity_id: str, expected: int, actual: int) -> None:
        self.kind = kind
        self.entity_id = entity_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"{kind} {entity_id!r} is at version {actual}, not the expected version {expected}"
        )


class OutOfStock(DomainError):
    """A product has fewer than `requested` in stock: `available`."""

    def __init__(self, product_id: str, requested: int, available: int) -> None:
        self.product_id = product_id
        self.requested = requested
        self.available = available
        super().__init__(
            f"Product {product_id!r} has {available} in stock; {requested} were requested"
        )


class InvalidTransition(DomainError):
    """The entity is `current`, from which no move to `wanted` exists."""

    def __init__(self, kind: str, entity_id: str, current: str, wanted: str) -> None:
        self.kind = kind
        self.entity_id = entity_id
        self.current = current
        self.wanted = wanted
        super().__init__(f"{kind} {entity_id!r} cannot go from {current} to {wanted}")


class Issues:
    """Collects field issues so a method can report all of them, then raise once."""

    def __init__(self) -> None:
        self._issues: list[FieldIssue] = []

    def add(self, path: str, message: str) -> None:
        self._issues.append(FieldIssue(tuple(path.split(".")), message))

    def add_within(self, field: str, inner: Iterable[FieldIssue]) -> None:
        """Issues of a value held in `field`, each with its path under that field's."""
        self._issues.extend(FieldIssue((field, *i.path), i.message) for i in inner)

    def raise_if_any(self) -> None:
        if self._issues:
            raise ValidationFailed(self._issues)
