"""Signing in again: a one-time code by email, checked against the customer's active one.

A customer has one `SignInCodes` aggregate, with an id of its own (the event log's key is
the stream id and version whatever the stream's type, so it cannot share the customer's).
It holds at most one active code: issuing a new one voids the one before.

The code itself is stored nowhere, not in the event log, not in a table: it is derived
from the code's id with a key only the service holds (`CodeKey`), so that the email can be
written again after a crash and an attempt checked, from the id alone.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.aggregate import Aggregate

CODE_DIGITS = 6
MAX_WRONG_ATTEMPTS = 5
"""Wrong codes after which the active code is voided, and the right one no longer works."""

A_CODE = f"a sign-in code is {CODE_DIGITS} digits"


@dataclass(frozen=True, slots=True)
class CodeKey:
    """The key codes are derived with: the code of an id is HMAC-SHA256(key, id), read as a
    number and cut to its last CODE_DIGITS digits."""

    secret: bytes = dataclasses.field(repr=False)

    def code_for(self, code_id: str) -> str:
        digest = hmac.new(self.secret, code_id.encode(), hashlib.sha256).digest()
        # 64 bits taken modulo 10**6: the bias toward small codes is below 10**-13.
        number = int.from_bytes(digest[:8], "big") % 10**CODE_DIGITS
        return f"{number:0{CODE_DIGITS}d}"

    def matches(self, code_id: str, given: str) -> bool:
        """Whether `given` is the code of `code_id`, in a time that does not tell how much
        of it was right."""
        expected = self.code_for(code_id).encode()
        return hmac.compare_digest(expected, given.encode("utf-8", "replace"))


class CodeState(enum.Enum):
    ACTIVE = "active"
    USED = "used"
    VOIDED = "voided"
    """Too many wrong attempts, or replaced by a newer code."""


@dataclass(frozen=True, slots=True)
class IssuedCode:
    """The latest code issued: which one (its id, never the code), until when, how often it
    was given wrong, and whether it still works."""

    code_id: str
    expires_at: datetime
    attempts: int = 0
    state: CodeState = CodeState.ACTIVE

    def works_at(self, now: datetime) -> bool:
        return self.state is CodeState.ACTIVE and now < self.expires_at


@dataclass(frozen=True, slots=True)
class SignInCodeIssued:
    """A new code is on its way to `email`; any code issued before it no longer works."""

    customer_id: str
    email: str
    code_id: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class SignInCodeRefused:
    """A wrong code was given for the active one: the `attempts`-th wrong one."""

    customer_id: str
    code_id: str
    attempts: int


@dataclass(frozen=True, slots=True)
class SignInCodeVoided:
    """The active code was given wrong too often, and no longer works."""

    customer_id: str
    code_id: str


@dataclass(frozen=True, slots=True)
class CustomerSignedIn:
    """The customer signed in with the code, which is now used up."""

    customer_id: str
    code_id: str


SIGN_IN_EVENTS = (SignInCodeIssued, SignInCodeRefused, SignInCodeVoided, CustomerSignedIn)


class SignInCodes(Aggregate):
    """One customer's sign-in codes: the latest one issued, if any."""

    kind = "SignInCodes"

    def __init__(
        self,
        codes_id: str,
        *,
        customer_id: str,
        code: IssuedCode | None = None,
        version: int = 0,
    ) -> None:
        super().__init__(codes_id, version)
        self.customer_id = customer_id
        self.code = code

    @classmethod
    def for_customer(cls, codes_id: str, customer_id: str) -> SignInCodes:
        """A customer's codes before the first is issued (stored once one is)."""
        return cls(codes_id, customer_id=customer_id)

    def issue(self, code_id: str, *, email: str, now: datetime, ttl: timedelta) -> None:
        """A new code for `email`, working until `now + ttl`; the one before stops working."""
        expires_at = now + ttl
        self.code = IssuedCode(code_id, expires_at)
        self._record(SignInCodeIssued(self.customer_id, email, code_id, expires_at))

    def sign_in(self, given: str, *, key: CodeKey, now: datetime) -> bool:
        """Whether `given` is the active code, which signing in uses up.

        A wrong code counts against the active code, and the MAX_WRONG_ATTEMPTS-th voids
        it, so that from then on the right code fails too. With no code that works (none
        issued, or expired, used or voided) nothing is counted: there is nothing left to
        guess, and the caller's budgets of attempts bound the rest.
        """
        code = self.code
        if code is None or not code.works_at(now):
            return False
        if key.matches(code.code_id, given):
            self.code = dataclasses.replace(code, state=CodeState.USED)
            self._record(CustomerSignedIn(self.customer_id, code.code_id))
            return True
        attempts = code.attempts + 1
        voided = attempts >= MAX_WRONG_ATTEMPTS
        self.code = dataclasses.replace(
            code, attempts=attempts, state=CodeState.VOIDED if voided else CodeState.ACTIVE
        )
        self._record(SignInCodeRefused(self.customer_id, code.code_id, attempts))
        if voided:
            self._record(SignInCodeVoided(self.customer_id, code.code_id))
        return False
