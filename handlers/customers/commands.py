"""Customer commands: registering, creating the profile (a reaction's command) and changing
its preferences, with their handlers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic.networks import validate_email

from domain.customers import (
    A_LANGUAGE_TAG,
    AN_EMAIL_ADDRESS,
    DEFAULT_LANGUAGE,
    EMAIL_TOO_LONG,
    LANGUAGE_PATTERN,
    MAX_EMAIL,
    MAX_LANGUAGE,
    MAX_NAME,
    NAME_REQUIRED,
    NAME_TOO_LONG,
    Customer,
    Preferences,
)
from domain.errors import NotFound
from handlers.access import NotAuthorized, identity_of
from handlers.idempotency import IdempotencyKey
from handlers.validation import Says
from handlers.written import Written
from mediator import Command, Context
from persistence.customers import email_taken
from persistence.unit_of_work import UnitOfWork


def _email_address(text: str) -> str:
    validate_email(text)
    return text


# The length first: the address parser would report its own, larger limit.
EmailAddress = Annotated[
    str,
    Field(max_length=MAX_EMAIL),
    AfterValidator(_email_address),
    Says(max_length=EMAIL_TOO_LONG, invalid=AN_EMAIL_ADDRESS),
]
Language = Annotated[
    str,
    Field(max_length=MAX_LANGUAGE, pattern=LANGUAGE_PATTERN),
    Says(max_length=A_LANGUAGE_TAG, pattern=A_LANGUAGE_TAG, invalid=A_LANGUAGE_TAG),
]


@dataclass(frozen=True, slots=True)
class RegisterCustomer(Command[Written]):
    name: Annotated[
        str,
        Field(min_length=1, max_length=MAX_NAME),
        Says(min_length=NAME_REQUIRED, max_length=NAME_TOO_LONG),
    ]
    email: EmailAddress
    idempotency_key: IdempotencyKey = None
    marketing_opt_in: bool = False
    language: Language = DEFAULT_LANGUAGE


async def register_customer(
    command: RegisterCustomer, ctx: Context, work: UnitOfWork, *, new_id: Callable[[], str]
) -> Written:
    customer = Customer.register(
        new_id(),
        name=command.name,
        email=command.email,
        marketing_opt_in=command.marketing_opt_in,
        language=command.language,
    )
    if await work.customers.email_taken(customer.email):
        raise email_taken()
    work.customers.add(customer)
    return Written.of(customer)


@dataclass(frozen=True, slots=True)
class CreateCustomerProfile(Command[Written]):
    """Give a newly registered customer its profile, with the preferences it registered
    with. Sent by the system only (the `customers.profile` reaction); sent again for the
    same customer, it changes nothing."""

    customer_id: str
    marketing_opt_in: bool = False
    language: Language = DEFAULT_LANGUAGE


async def create_customer_profile(
    command: CreateCustomerProfile, ctx: Context, work: UnitOfWork
) -> Written:
    customer = await work.customers.get_to_change(command.customer_id)
    if customer is None:
        raise NotFound(Customer.kind, command.customer_id)
    customer.create_profile(Preferences(command.marketing_opt_in, command.language))
    return Written.of(customer)


@dataclass(frozen=True, slots=True)
class UpdatePreferences(Command[Written]):
    """The signed-in customer's new preferences, both of them; `expected_version` is the
    customer's version (Customer.version) the caller decided on."""

    marketing_opt_in: bool
    language: Language
    expected_version: int | None = None
    idempotency_key: IdempotencyKey = None


async def update_preferences(command: UpdatePreferences, ctx: Context, work: UnitOfWork) -> Written:
    caller = identity_of(ctx)
    customer_id = caller.customer_id if caller is not None else None
    customer = None if customer_id is None else await work.customers.get_to_change(customer_id)
    if customer is None:
        # The policy lets customers only, and a token names a registered customer: a token
        # naming nobody here (another deployment's secret) can do nothing.
        raise NotAuthorized("Sign in as a registered customer to do this", signed_in=True)
    customer.check_version(command.expected_version)
    customer.update_preferences(Preferences(command.marketing_opt_in, command.language))
    return Written.of(customer)
