"""What the shop does when a customer registers or opts in to marketing: a welcome email,
the customer's profile, and a note to the marketing team, each its own handler.

Each is delivered at least once: the emails are sent under the handler's effect key, so a
redelivery sends nothing again, and the profile is created by an ordinary command that
changes nothing the second time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path

from domain.customers import Customer, CustomerRegistered, PreferencesUpdated
from handlers.customers.commands import CreateCustomerProfile
from handlers.mail import Mailer, render
from handlers.pipeline import ReadModelLagging
from handlers.reactions import Committed, effect_key, send_command
from mediator import Context

WELCOME_EMAIL = "customers.welcome_email"
PROFILE = "customers.profile"
MARKETING_NOTE = "customers.marketing_note"

FindCustomer = Callable[[str], Awaitable[Customer | None]]
"""The customer as committed, by id (persistence.customers.committed_customer)."""

_TEMPLATES = Path(__file__).parent / "templates"


async def send_welcome_email(
    notification: Committed[CustomerRegistered], ctx: Context, *, mailer: Mailer
) -> None:
    event = notification.event
    email = render(
        _TEMPLATES,
        "welcome",
        event.email,
        customer_name=event.name,
        email=event.email,
        language=event.language,
        marketing_opt_in=event.marketing_opt_in,
    )
    await mailer.send(
        email, key=effect_key(notification, ctx), correlation_id=notification.correlation_id
    )


async def create_profile(notification: Committed[CustomerRegistered], ctx: Context) -> None:
    event = notification.event
    command = CreateCustomerProfile(event.customer_id, event.marketing_opt_in, event.language)
    # Committed even if the wait for the read models runs out; nobody reads the answer.
    with contextlib.suppress(ReadModelLagging):
        await send_command(ctx, command)


async def note_to_marketing(
    notification: Committed[CustomerRegistered] | Committed[PreferencesUpdated],
    ctx: Context,
    *,
    mailer: Mailer,
    to: str,
    find_customer: FindCustomer | None = None,
) -> None:
    """Tell the marketing team of a customer who opted in: at registration, or later by
    turning marketing on (with `find_customer`, to learn whom the update was about)."""
    event = notification.event
    if isinstance(event, CustomerRegistered):
        if not event.marketing_opt_in:
            return
        name, address, registering = event.name, event.email, True
    else:
        if not event.marketing_turned_on or find_customer is None:
            return
        customer = await find_customer(event.customer_id)
        if customer is None:
            raise LookupError(f"customer {event.customer_id} opted in but is not stored")
        if customer.preferences is not None and not customer.preferences.marketing_opt_in:
            # Turned off again before this note went out: marketing has no one to write to.
            return
        name, address, registering = customer.name, customer.email, False
    email = render(
        _TEMPLATES,
        "marketing_note",
        to,
        customer_name=name,
        email=address,
        language=event.language,
        registering=registering,
    )
    await mailer.send(
        email, key=effect_key(notification, ctx), correlation_id=notification.correlation_id
    )
