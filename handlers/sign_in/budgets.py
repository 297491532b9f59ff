"""Budgets per email address for the sign-in commands: a stranger who moves from address to
address still gets only so many codes sent to one mailbox, and so many guesses at it."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

from domain.customers import normalize_email
from handlers.rate_limit import Admission, limit_per_address
from mediator import Context, Next


def email_key(email: str) -> str:
    """What an address is counted by: a digest, so that the counters (in Redis, perhaps)
    hold no address, and a long one costs no more than a short one."""
    return hashlib.sha256(normalize_email(email).encode("utf-8", "replace")).hexdigest()


def limit_per_email(
    admit: Admission,
) -> Callable[[object, Next[object], Context], Awaitable[object]]:
    """Count each message against the budget of the email address it names (its `email`),
    whether or not a customer has it, so that the answer tells nothing. Like the budgets
    per client address, only a client's messages count (they carry its address)."""
    return limit_per_address(admit, counted_by=_mailbox)


def _mailbox(message: object) -> str | None:
    email = getattr(message, "email", None)
    return email_key(email) if isinstance(email, str) else None
