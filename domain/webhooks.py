"""The webhook: an endpoint of another system that is told of the shop's events.

Which events a webhook may be sent is derived from the domain's own event classes, so the
offer cannot drift from them: each event of an order, a product or a customer that is named
for its entity and one word of what happened (`OrderPlaced`, `ProductRestocked`,
`CustomerRegistered`). Stock reservations name an order and a quantity (who buys what, and
when), and events of other kinds (a sign-in code, a webhook's own) are the service's own
business: none of them is offered. Each is offered under its GraphQL spelling
(`ORDER_PLACED`), which is also how a webhook stores the events it takes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from domain.aggregate import Aggregate
from domain.customers import CUSTOMER_EVENTS, Customer
from domain.errors import Issues
from domain.orders import ORDER_EVENTS, Order
from domain.products import PRODUCT_EVENTS, Product

MAX_URL = 2_000
MAX_REASON = 500

URL_REQUIRED = "a URL is required"
URL_TOO_LONG = f"a URL is at most {MAX_URL} characters"
URL_CHARACTERS = "a URL cannot contain spaces or control characters"
URL_SCHEME = "a webhook URL starts with https:// or http://"
URL_CREDENTIALS = (
    "a webhook URL cannot carry a user name or password; the signature tells the receiver "
    "the request is the shop's"
)
URL_HOST = "a webhook URL names a host"
URL_PORT = "the port must be a number from 1 to 65535"
EVENTS_REQUIRED = "choose at least one event"
EVENT_REPEATED = "this event is listed already"
EVENT_UNKNOWN = "webhooks are not sent for this event"
REASON_TOO_LONG = f"a reason is at most {MAX_REASON} characters"
DISABLED_BY_STAFF = "disabled by staff"

_WORD_BOUNDARY = re.compile(r"(?<!^)(?=[A-Z])")
_ONE_WORD = re.compile(r"[A-Z][a-z]+")


def graphql_name(event_type: type) -> str:
    """`OrderPlaced` as GraphQL spells an enum value: `ORDER_PLACED`."""
    return _WORD_BOUNDARY.sub("_", event_type.__name__).upper()


def _offered(kind: str, events: Sequence[type]) -> list[type]:
    return [
        event_type
        for event_type in events
        if event_type.__name__.startswith(kind)
        and _ONE_WORD.fullmatch(event_type.__name__[len(kind) :])
    ]


OFFERED_EVENTS: Mapping[str, type] = {
    graphql_name(event_type): event_type
    for kind, events in (
        (Order.kind, ORDER_EVENTS),
        (Product.kind, PRODUCT_EVENTS),
        (Customer.kind, CUSTOMER_EVENTS),
    )
    for event_type in _offered(kind, events)
}
"""The events a webhook may take, by their GraphQL name, in the order they are listed."""


@dataclass(frozen=True, slots=True)
class WebhookRegistered:
    """A new endpoint; its signing secret is never in an event (nor in any read model)."""

    webhook_id: str
    url: str
    events: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WebhookDisabled:
    webhook_id: str
    reason: str


WEBHOOK_EVENTS = (WebhookRegistered, WebhookDisabled)


def url_issues(url: str) -> list[str]:
    """What is wrong with `url` as a webhook's endpoint, in the words a client is shown.

    Only its form: whether its host may be reached is the network's question
    (handlers/webhooks/addresses.py), asked at registration and again at every delivery.
    """
    issue = _url_issue(url)
    return [] if issue is None else [issue]


def _url_issue(url: str) -> str | None:
    text_checks = (
        (not url, URL_REQUIRED),
        (len(url) > MAX_URL, URL_TOO_LONG),
        # CR and LF above all: a URL ends up in a request line.
        (any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url), URL_CHARACTERS),
    )
    issue = next((issue for failed, issue in text_checks if failed), None)
    if issue is not None:
        return issue
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return URL_PORT if _has_scheme(url) else URL_SCHEME
    part_checks = (
        (parts.scheme.lower() not in ("http", "https"), URL_SCHEME),
        ("@" in parts.netloc, URL_CREDENTIALS),
        (not parts.hostname, URL_HOST),
        (port == 0, URL_PORT),
    )
    return next((issue for failed, issue in part_checks if failed), None)


def _has_scheme(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


class Webhook(Aggregate):
    kind = "Webhook"

    def __init__(
        self,
        webhook_id: str,
        *,
        url: str,
        events: Sequence[str],
        secret: str,
        created_at: datetime,
        active: bool = True,
        disabled_reason: str | None = None,
        version: int = 0,
    ) -> None:
        super().__init__(webhook_id, version)
        self.url = url
        self.events = tuple(events)
        self.secret = secret
        self.created_at = created_at
        self.active = active
        self.disabled_reason = disabled_reason

    @classmethod
    def register(
        cls,
        webhook_id: str,
        *,
        url: str,
        events: Sequence[str],
        secret: str,
        created_at: datetime,
    ) -> Webhook:
        """A new, active webhook for `events` (GraphQL names, each once) at `url`."""
        issues = Issues()
        url = url.strip()
        for issue in url_issues(url):
            issues.add("url", issue)
        if not events:
            issues.add("events", EVENTS_REQUIRED)
        seen: set[str] = set()
        for index, name in enumerate(events):
            if name not in OFFERED_EVENTS:
                issues.add(f"events.{index}", EVENT_UNKNOWN)
            elif name in seen:
                issues.add(f"events.{index}", EVENT_REPEATED)
            seen.add(name)
        issues.raise_if_any()
        webhook = cls(webhook_id, url=url, events=events, secret=secret, created_at=created_at)
        webhook._record(WebhookRegistered(webhook_id, url, webhook.events))
        return webhook

    def disable(self, reason: str | None = None) -> None:
        """Send it nothing more. Disabling it again changes nothing: the first reason stays."""
        reason = (reason or "").strip() or DISABLED_BY_STAFF
        if len(reason) > MAX_REASON:
            issues = Issues()
            issues.add("reason", REASON_TOO_LONG)
            issues.raise_if_any()
        if not self.active:
            return
        self.active = False
        self.disabled_reason = reason
        self._record(WebhookDisabled(self.id, reason))
