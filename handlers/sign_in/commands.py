"""Sign-in commands: asking for a code by email, and signing in with it.

Both answer a value, never a refusal of their own: a request for an address no customer
has is answered like any other (nothing is written and no email goes), and a wrong code is
answered like an expired, used or voided one, or one for an unknown address. Returning
rather than raising is also what commits a wrong attempt: the count of wrong codes must be
kept even though the answer is "no".
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated

from pydantic import Field

from domain.customers import normalize_email
from domain.sign_in import A_CODE, CODE_DIGITS, CodeKey, SignInCodes
from handlers.customers import EmailAddress
from handlers.validation import Says
from mediator import Command, Context
from persistence.unit_of_work import UnitOfWork


@dataclass(frozen=True, slots=True)
class CodeRequested:
    """What a request for a code answers, whether or not a customer has the address."""

    email: str
    """The address, as the service spells it (trimmed, lower case)."""
    valid_for: float
    """Seconds the code works for, once it is issued."""


@dataclass(frozen=True, slots=True)
class RequestSignInCode(Command[CodeRequested]):
    """Email a new one-time code to `email`, if a customer is registered with it."""

    email: EmailAddress


@dataclass(frozen=True, slots=True)
class SignInOutcome:
    customer_id: str | None
    """The customer the code signed in; None when it did not (which reason is not told)."""


@dataclass(frozen=True, slots=True)
class SignIn(Command[SignInOutcome]):
    email: EmailAddress
    # Kept out of reprs: a message printed in a failure must not show a working code.
    code: Annotated[
        str, Field(pattern=f"^[0-9]{{{CODE_DIGITS}}}$"), Says(pattern=A_CODE, invalid=A_CODE)
    ] = field(repr=False)


def new_code_id() -> str:
    """Random and never repeated: an id issued twice would give the same code twice."""
    return secrets.token_hex(16)


async def request_sign_in_code(
    command: RequestSignInCode,
    ctx: Context,
    work: UnitOfWork,
    *,
    new_id: Callable[[], str],
    new_code_id: Callable[[], str],
    clock: Callable[[], datetime],
    ttl: float,
) -> CodeRequested:
    email = normalize_email(command.email)
    answer = CodeRequested(email, ttl)
    customer_id = await work.sign_in_codes.customer_for(email)
    if customer_id is None:
        return answer
    codes = await work.sign_in_codes.of_customer(customer_id)
    if codes is None:
        codes = SignInCodes.for_customer(new_id(), customer_id)
        work.sign_in_codes.add(codes)
    codes.issue(new_code_id(), email=email, now=clock(), ttl=timedelta(seconds=ttl))
    return answer


async def sign_in(
    command: SignIn,
    ctx: Context,
    work: UnitOfWork,
    *,
    key: Callable[[], CodeKey],
    clock: Callable[[], datetime],
) -> SignInOutcome:
    customer_id = await work.sign_in_codes.customer_for(normalize_email(command.email))
    codes = None if customer_id is None else await work.sign_in_codes.of_customer(customer_id)
    if codes is None or not codes.sign_in(command.code, key=key(), now=clock()):
        return SignInOutcome(None)
    return SignInOutcome(codes.customer_id)
