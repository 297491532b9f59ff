"""Global ids (Relay): the opaque `ID`s clients see, and the local ids inside them.

Arguments and input fields that take an entity's id are typed `ID` and decoded here rather
than by Strawberry's `GlobalID`, so that a refusal can name the id exactly as the client sent
it: a decoded id written out again is not always the same text (lenient base64 skips what
is not of its alphabet), and an id re-encoded under the expected type is one the client
never sent at all.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from strawberry import relay
from strawberry.relay.types import GlobalIDValueError

from domain.aggregate import is_possible_id
from domain.errors import NotFound

_SHOWN = 80
"""Longer than any id the API gives (the longest is 56 characters); what is longer is cut."""


def shown(sent: str) -> str:
    """The id as sent, quoted, cut short if it is long: a refusal names it, not repeats it."""
    return f'"{sent}"' if len(sent) <= _SHOWN else f'"{sent[:_SHOWN]}…"'


def _a(kind: str) -> str:
    return f"an {kind}" if kind[:1] in "AEIOU" else f"a {kind}"


class MalformedId(GlobalIDValueError):
    """Text that is no global id at all. A GlobalIDValueError, as Strawberry's own refusal
    of one is: the error policy answers it as BAD_USER_INPUT, not as a fault."""

    def __init__(self, sent: str, kind: str) -> None:
        self.sent = sent
        super().__init__(f"{shown(sent)} is not {_a(kind)} id, nor any id this API gives")


@dataclass(frozen=True)
class SentId:
    """A global id as a client sent it, with what it says inside."""

    sent: str
    kind: str
    local: str

    @classmethod
    def decode(cls, sent: str, expected: str) -> SentId:
        """Strict base64 of `Kind:local`; anything else is a MalformedId (`expected` is the
        kind the argument takes, for the message)."""
        try:
            text = base64.b64decode(sent, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise MalformedId(sent, expected) from None
        kind, colon, local = text.partition(":")
        if not colon or not kind:
            raise MalformedId(sent, expected)
        return cls(sent, kind, local)

    def not_of(self, kind: str) -> str | None:
        """Why this id cannot name a `kind`, if it is another type's; None if it is a `kind`'s."""
        if self.kind == kind:
            return None
        return f"{shown(self.sent)} is {_a(self.kind)} id, not {_a(kind)} id"


class UnusableId(NotFound):
    """An id in a command's input that names no `kind` whatever is stored: another type's
    id, or one no entity could have (empty, too long, a NUL). A NotFoundError, as any
    unknown id is, rather than a ValidationError no result union of a command on it lists;
    told with the id as it was sent."""

    def __init__(self, kind: str, sent: str, reason: str) -> None:
        super().__init__(kind, sent)
        self.sent = sent
        self.reason = reason


def local_id(sent: str, kind: str) -> str:
    """The id inside a global id of `kind`, for a command; UnusableId if it cannot be one."""
    decoded = SentId.decode(sent, kind)
    reason = decoded.not_of(kind)
    if reason is None and not is_possible_id(decoded.local):
        reason = f"there is no {kind.lower()} with the id {shown(sent)}"
    if reason is not None:
        raise UnusableId(kind, sent, reason)
    return decoded.local


def read_id(sent: str, kind: str) -> str | None:
    """The id inside a global id of `kind`, for a read by id: None if it is another type's,
    since what a caller may not see reads as null (a malformed one is BAD_USER_INPUT)."""
    decoded = SentId.decode(sent, kind)
    return decoded.local if decoded.not_of(kind) is None else None


def global_id(kind: str, entity_id: str) -> str:
    return str(relay.GlobalID(kind, entity_id))
