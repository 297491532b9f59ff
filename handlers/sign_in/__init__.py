"""Signing in again: a one-time code by email, for a customer that lost its token.

The package's face: the wiring (who may send what, and `register`, the handlers the
mediator gets) and every name other code imports from `handlers.sign_in`:

- `commands`: RequestSignInCode and SignIn, with their handlers;
- `code_email`: the reaction that emails each code issued;
- `budgets`: the budgets per email address, beside those per client address
  (orderdesk/rate_limits.py), which bootstrap puts in the pipeline.

Anyone may send both commands: the budgets, and a code's own limit of wrong attempts, are
the defence against guessing.
"""

from __future__ import annotations

from functools import cache, partial

from domain.sign_in import SIGN_IN_EVENTS, CodeKey, SignInCodeIssued, SignInCodes
from handlers.access import Policy, anyone
from handlers.feature import Feature, Wiring
from handlers.reactions import committed
from handlers.sign_in.budgets import email_key, limit_per_email
from handlers.sign_in.code_email import CODE_EMAIL, code_email, email_sign_in_code, validity
from handlers.sign_in.commands import (
    CodeRequested,
    RequestSignInCode,
    SignIn,
    SignInOutcome,
    new_code_id,
    request_sign_in_code,
    sign_in,
)
from handlers.transaction import writes
from mediator import ConfigurationError, Registry

__all__ = [
    "CODE_EMAIL",
    "EVENT_TYPES",
    "FEATURE",
    "KEY_PURPOSE",
    "POLICIES",
    "CodeRequested",
    "RequestSignInCode",
    "SignIn",
    "SignInOutcome",
    "code_email",
    "email_key",
    "email_sign_in_code",
    "limit_per_email",
    "new_code_id",
    "register",
    "request_sign_in_code",
    "sign_in",
    "validity",
]

KEY_PURPOSE = "orderdesk sign-in codes"
"""What the codes' key is derived for, from the service secret."""

EVENT_TYPES = SIGN_IN_EVENTS
POLICIES: dict[type, Policy] = {
    RequestSignInCode: anyone,
    SignIn: anyone,
}


def register(registry: Registry, wiring: Wiring) -> None:
    service_key = wiring.service_key
    if service_key is None:
        raise ConfigurationError("sign-in codes need the service's key (Wiring.service_key)")

    @cache
    def key() -> CodeKey:
        # On first use, not here: a process that never signs anyone in makes no secret.
        return CodeKey(service_key(KEY_PURPOSE))

    ttl = wiring.reacting.sign_in_code_ttl
    registry.handle(
        RequestSignInCode,
        writes(
            partial(
                request_sign_in_code,
                new_id=partial(wiring.ids, SignInCodes.kind),
                new_code_id=new_code_id,
                clock=wiring.clock,
                ttl=ttl,
            )
        ),
    )
    registry.handle(SignIn, writes(partial(sign_in, key=key, clock=wiring.clock)))
    if wiring.mailer is not None:
        registry.subscribe(
            committed(SignInCodeIssued),
            partial(
                email_sign_in_code, mailer=wiring.mailer, key=key, clock=wiring.clock, valid_for=ttl
            ),
            name=CODE_EMAIL,
        )


FEATURE = Feature(
    "sign_in",
    event_types=EVENT_TYPES,
    policies=POLICIES,
    register=register,
)
