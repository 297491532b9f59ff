"""Webhooks: registering and disabling them, and the address check made before registering."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated
from urllib.parse import urlsplit

import httpx
from pydantic import Field

from domain.errors import FieldIssue, NotFound, ValidationFailed
from domain.webhooks import (
    MAX_REASON,
    MAX_URL,
    OFFERED_EVENTS,
    REASON_TOO_LONG,
    URL_TOO_LONG,
    Webhook,
    url_issues,
)
from handlers.validation import Says
from handlers.webhooks.addresses import (
    Resolver,
    UnreachableAddress,
    checked_addresses,
    literal_address,
    refusal,
    system_resolver,
)
from handlers.webhooks.signature import new_secret
from handlers.written import Written
from mediator import Command, Context, Query
from persistence.unit_of_work import UnitOfWork

TOO_MANY_EVENTS = f"there are {len(OFFERED_EVENTS)} events to choose from, each at most once"


@dataclass(frozen=True, slots=True)
class RegisterWebhook(Command[Written]):
    """Start telling `url` of `events` (their GraphQL names)."""

    url: Annotated[str, Field(max_length=MAX_URL), Says(max_length=URL_TOO_LONG)]
    events: Annotated[
        tuple[str, ...],
        Field(max_length=len(OFFERED_EVENTS)),
        Says(max_length=TOO_MANY_EVENTS),
    ]


@dataclass(frozen=True, slots=True)
class RegisteredWebhook(Written):
    """The new webhook, with its signing secret: the one answer that ever shows it."""

    secret: str = field(default="", repr=False)
    url: str = ""
    events: tuple[str, ...] = ()
    created_at: datetime | None = None
    """What it was registered with: the answer that shows the secret must not be lost to a
    read model that has not caught up yet."""


@dataclass(frozen=True, slots=True)
class DisableWebhook(Command[Written]):
    webhook_id: str
    reason: Annotated[
        str | None, Field(max_length=MAX_REASON), Says(max_length=REASON_TOO_LONG)
    ] = None


@dataclass(frozen=True, slots=True)
class CheckWebhookUrl(Query[None]):
    """Refuse (ValidationFailed on `url`) a URL whose host may not be reached or cannot be
    found. A question apart from RegisterWebhook so that the lookup, which may take seconds,
    is made before the registration's transaction opens, never while it holds the write."""

    url: str


UNSENDABLE = "this URL cannot be sent to: check its host name"


def _unsendable(url: str) -> str | None:
    """Why a well-formed URL could never be delivered to: the courier's HTTP client does not
    take it (a host name that is no IDNA name, say)."""
    try:
        httpx.URL(url)
    except httpx.InvalidURL:
        return UNSENDABLE
    return None


def _refused_by_name(url: str) -> str | None:
    """Why `url`'s host may not be reached, from its name alone (an address, `localhost`)."""
    host = (urlsplit(url).hostname or "").rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return f"{host} is this computer's own name, which webhooks may not reach"
    address = literal_address(host)
    return None if address is None else refusal(address)


async def register_webhook(
    command: RegisterWebhook,
    ctx: Context,
    work: UnitOfWork,
    *,
    new_id: Callable[[], str],
    clock: Callable[[], datetime],
    allow_private: bool,
) -> RegisteredWebhook:
    secret = new_secret()
    webhook = Webhook.register(
        new_id(), url=command.url, events=command.events, secret=secret, created_at=clock()
    )
    # What the name alone tells, again: a command sent without the check first must not
    # register an address it would refuse.
    refused = _unsendable(webhook.url) or (None if allow_private else _refused_by_name(webhook.url))
    if refused is not None:
        raise ValidationFailed([FieldIssue(("url",), refused)])
    work.webhooks.add(webhook)
    return RegisteredWebhook(
        webhook.id,
        webhook.version,
        kind=Webhook.kind,
        secret=secret,
        url=webhook.url,
        events=webhook.events,
        created_at=webhook.created_at,
    )


async def disable_webhook(command: DisableWebhook, ctx: Context, work: UnitOfWork) -> Written:
    webhook = await work.webhooks.get(command.webhook_id)
    if webhook is None:
        raise NotFound(Webhook.kind, command.webhook_id)
    webhook.disable(command.reason)
    return Written.of(webhook)


async def check_webhook_url(
    query: CheckWebhookUrl,
    ctx: Context,
    *,
    allow_private: bool,
    timeout: float,  # noqa: ASYNC109
    resolve: Resolver = system_resolver,
) -> None:
    url = query.url.strip()
    if allow_private or url_issues(url):
        # A malformed URL is the registration's to refuse, with every other issue at once.
        return
    refused = _refused_by_name(url)
    if refused is None:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        try:
            await checked_addresses(
                parts.hostname or "", port, allow_private=False, resolve=resolve, timeout=timeout
            )
        except UnreachableAddress as unreachable:
            refused = str(unreachable)
    if refused is not None:
        raise ValidationFailed([FieldIssue(("url",), refused)])
