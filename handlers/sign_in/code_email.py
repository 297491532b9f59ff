"""The sign-in code's email: a reaction to SignInCodeIssued, so that the code goes out once
the request has committed, and a crash before or after sending neither loses nor repeats it
(the email is sent under the handler's effect key)."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from domain.sign_in import CodeKey, SignInCodeIssued
from handlers.mail import Email, Mailer, render
from handlers.reactions import Committed, effect_key
from mediator import Context

CODE_EMAIL = "sign_in.code_email"

TEMPLATES = Path(__file__).parent / "templates"


def validity(seconds: float) -> str:
    """How long a code works, as the email says it: "10 minutes", "1 hour", "30 seconds"."""
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            return _count(int(seconds // size), unit)
    if seconds >= 60:
        return _count(math.ceil(seconds / 60), "minute")
    return _count(math.ceil(seconds), "second")


def _count(number: int, unit: str) -> str:
    return f"{number} {unit}" if number == 1 else f"{number} {unit}s"


def code_email(to: str, code: str, valid_for: float) -> Email:
    # The subject holds no code: it is kept beside the effect key, and `orderdesk trace`
    # prints it.
    return render(TEMPLATES, "sign_in_code", to, code=code, valid_for=validity(valid_for))


async def email_sign_in_code(
    notification: Committed[SignInCodeIssued],
    ctx: Context,
    *,
    mailer: Mailer,
    key: Callable[[], CodeKey],
    clock: Callable[[], datetime],
    valid_for: float,
) -> None:
    """Send the code, derived again from its id; the code is in no event and no table.

    A code that expired before its email could go (the reaction was parked, or far behind)
    is not sent: it would not work, and a backlog of them would reach customers at once.
    """
    event = notification.event
    if clock() >= event.expires_at:
        return
    email = code_email(event.email, key().code_for(event.code_id), valid_for)
    await mailer.send(
        email, key=effect_key(notification, ctx), correlation_id=notification.correlation_id
    )
