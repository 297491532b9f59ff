"""Signing in again in GraphQL: requestSignInCode emails a one-time code, signIn trades it
for an access token.

Neither answer tells whether an address is registered: a request for any valid address is
answered alike, and every code that does not sign in (wrong, expired, used, voided, or for
an address no customer has) is refused with the one InvalidSignInCodeError.
"""

from __future__ import annotations

import logging
import math
from typing import Annotated

import strawberry

from domain.customers import MAX_EMAIL
from domain.errors import DomainError, VersionConflict
from domain.sign_in import CODE_DIGITS, MAX_WRONG_ATTEMPTS
from handlers.access import Identity, Role
from handlers.sign_in import CodeRequested, RequestSignInCode, SignIn
from mediator import Context
from schema.context import Info, Loaders
from schema.errors import Error, ValidationError
from schema.nodes import Customer, load_customer
from schema.results import refusal

logger = logging.getLogger("orderdesk.graphql")

INVALID_CODE = (
    "This code does not sign you in: it may be mistyped, expired or used, or a newer code "
    "was asked for. Ask for a new code and use the latest email."
)


@strawberry.input(description="Where to send a sign-in code.")
class RequestSignInCodeInput:
    email: str = strawberry.field(
        description="The email address the customer registered with; at most "
        f"{MAX_EMAIL} characters, in any case."
    )


@strawberry.type(
    description="If a customer is registered with the address, a new code is on its way to "
    "it; the answer is the same whether or not one is, so that it tells nobody who is a "
    "customer."
)
class RequestSignInCodeSuccess:
    email: str = strawberry.field(
        description="The address the code goes to, as the shop spells it (trimmed, in lower case)."
    )
    code_valid_for_seconds: int = strawberry.field(
        description="How long the code works once sent, in seconds (600: ten minutes). Only "
        "the latest code asked for works, once."
    )


RequestSignInCodeResult = Annotated[
    RequestSignInCodeSuccess | ValidationError,
    strawberry.union(
        "RequestSignInCodeResult",
        description="The code is on its way (if the address is a customer's), or a "
        "ValidationError (not an email address). Too many requests, from one client or for "
        "one address, are refused with a RATE_LIMITED error (HTTP 429, Retry-After).",
    ),
]


@strawberry.input(description="The code from the sign-in email, and the address it went to.")
class SignInInput:
    email: str = strawberry.field(description="The address the code was sent to.")
    code: str = strawberry.field(
        description=f"The {CODE_DIGITS} digits from the latest sign-in email; spaces around "
        "them are ignored."
    )


@strawberry.type(description="The code was right: the customer is signed in.")
class SignInSuccess:
    access_token: str = strawberry.field(
        description="A bearer token for the customer (Authorization: Bearer …), as "
        "registerCustomer gives one. The code is used up: it never signs in again."
    )
    customer: Customer | None = strawberry.field(
        description="The signed-in customer; null only in the moment the service cannot read "
        "it yet (the token works all the same: ask `me` a moment later)."
    )


@strawberry.type(
    description="The code does not sign in: it is wrong, expired, used, or replaced by a newer "
    f"one, or no customer has the address; which one is not told. After {MAX_WRONG_ATTEMPTS} "
    "wrong codes the latest code no longer works either: ask for a new one."
)
class InvalidSignInCodeError(Error):
    pass


SignInResult = Annotated[
    SignInSuccess | InvalidSignInCodeError | ValidationError,
    strawberry.union(
        "SignInResult",
        description="The customer's access token, or InvalidSignInCodeError, or a "
        f"ValidationError (not an email address, or a code that is not {CODE_DIGITS} "
        "digits). Too many attempts, from one client or at one address, are refused with a "
        "RATE_LIMITED error (HTTP 429, Retry-After).",
    ),
]


@strawberry.type
class SignInMutations:
    @strawberry.mutation(
        graphql_type=RequestSignInCodeResult,
        description="Email a one-time sign-in code to a registered customer's address; anyone "
        "may ask. Asking again makes the code before stop working.",
    )
    async def request_sign_in_code(
        self,
        info: Info,
        input: Annotated[
            RequestSignInCodeInput,
            strawberry.argument(description="The address to send the code to."),
        ],
    ) -> RequestSignInCodeSuccess | Error:
        command = RequestSignInCode(email=input.email)
        try:
            try:
                requested = await _send(info, command)
            except VersionConflict:
                # A customer's first request, raced by another at the same moment: asked
                # again, it finds the other's code and replaces it, as any newer one does.
                requested = await _send(info, command)
        except DomainError as error:
            return refusal(error, RequestSignInCodeResult, info.field_name)
        return RequestSignInCodeSuccess(
            email=requested.email, code_valid_for_seconds=math.ceil(requested.valid_for)
        )

    @strawberry.mutation(
        graphql_type=SignInResult,
        description="Sign in with the code from the sign-in email: answers an access token for "
        "the customer. Anyone may call it; each code works once.",
    )
    async def sign_in(
        self,
        info: Info,
        input: Annotated[SignInInput, strawberry.argument(description="The address and code.")],
    ) -> SignInSuccess | Error:
        try:
            outcome = await info.context.mediator.send(
                SignIn(email=input.email, code=input.code.strip()), info.context.ctx.copy()
            )
        except VersionConflict:
            # Another attempt with the same code committed first: it was used up meanwhile.
            return InvalidSignInCodeError(message=INVALID_CODE)
        except DomainError as error:
            return refusal(error, SignInResult, info.field_name)
        customer_id = outcome.customer_id
        if customer_id is None:
            return InvalidSignInCodeError(message=INVALID_CODE)
        # The caller is anonymous still; the customer is read as itself.
        as_customer = Context(
            correlation_id=info.context.ctx.correlation_id,
            identity=Identity(customer_id, Role.CUSTOMER),
        )
        token = info.context.issue_customer_token(customer_id)
        try:
            customer = await load_customer(Loaders(info.context.mediator, as_customer), customer_id)
        except Exception:
            # The code is used up: an error now would cost the caller its token for good.
            logger.warning("signed in %s, but reading it back failed", customer_id, exc_info=True)
            customer = None
        return SignInSuccess(access_token=token, customer=customer)


async def _send(info: Info, command: RequestSignInCode) -> CodeRequested:
    # A copy per command: behaviors keep per-command state on the context.
    return await info.context.mediator.send(command, info.context.ctx.copy())
