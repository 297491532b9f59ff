"""A feature as one value: everything the composition root needs of it, in one place.

`orderdesk/bootstrap.py` loops over its features instead of gathering each one's event
types, policies, idempotent commands, cached queries, projections and event views by name;
adding a feature, or a message to one, is done in the feature alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from handlers.access import Policy
from handlers.mail import Mailer
from handlers.query_cache import Cached
from mediator import ConfigurationError, Mediator, Registry
from persistence.event_tail import EventTail
from persistence.projector import Projection
from persistence.tail_events import ViewLoader


def new_id(kind: str) -> str:
    """A new entity's id: random, so that no id tells how many entities there are."""
    return uuid.uuid4().hex


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Reacting:
    """What reaction handlers and workers take from the service's settings."""

    marketing_email: str | None = None
    staff_email: str | None = None
    low_stock_threshold: int = 5
    pending_order_ttl: float | None = None
    """Seconds after which a PENDING order is cancelled as expired; None, never."""
    sign_in_code_ttl: float = 600.0
    webhook_allow_private: bool = False
    webhook_connect_timeout: float = 5.0
    webhook_read_timeout: float = 10.0
    webhook_retry_for: float = 86_400.0
    webhook_retry_delay: float = 10.0
    webhook_max_failures: int = 20
    poll_interval: float = 1.0
    """Seconds between a worker's looks for due work when nothing woke it."""


@dataclass(frozen=True, slots=True)
class Wiring:
    """What the service hands every feature's handlers as it registers them."""

    read_engine: AsyncEngine
    scan_engine: AsyncEngine
    """For reads whose cost grows with the data (lists, counts, searches)."""
    tail: EventTail | None = None
    """For subscription streams; None where nothing streams (the command line)."""
    public_stock_events: bool = True
    """Whether anyone may watch stock levels (ORDERDESK_PUBLIC_STOCK_EVENTS)."""
    ids: Callable[[str], str] = new_id
    """A new id for an entity of the given kind (unit tests count them instead)."""
    mailer: Mailer | None = None
    """What reaction handlers send email with; None where nothing reacts (unit tests of
    queries and commands)."""
    reacting: Reacting = Reacting()
    effects_engine: AsyncEngine | None = None
    """Where reactions and workers keep what they did (emails sent, webhook deliveries, due
    orders): the read-model database's write engine, beside the reactions' checkpoints."""
    write_reads_engine: AsyncEngine | None = None
    """Reads of the write model outside any command (a webhook's signing secret)."""
    clock: Callable[[], datetime] = utc_now
    webhook_attempted: Callable[[str], None] | None = None
    """Told each webhook attempt's outcome (delivered, retrying, failed), for /metrics."""
    service_key: Callable[[str], bytes] | None = None
    """A key for one purpose (its label), derived from the service secret that every
    process shares; the secret is read on first use, so a process that needs no key makes
    no secret file."""


class Worker(Protocol):
    """Something a feature runs in the background while the service runs, beside the
    reactor: a webhook courier, a timer for due orders. Several processes may run one
    each; a worker shares its work with the others' by claiming rows, never by memory."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


WorkerFactory = Callable[[Wiring, Mediator], Worker]
"""Makes a feature's worker once the mediator is built (a worker sends commands with it)."""


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    event_types: Sequence[type]
    policies: Mapping[type, Policy]
    """Who may send each of its messages: every message must have one."""
    register: Callable[[Registry, Wiring], None]
    idempotent: Mapping[type, str] = field(default_factory=dict)
    """Commands that take an idempotency key, with the kind of entity each writes."""
    cached: Mapping[type, Cached] = field(default_factory=dict)
    projections: Sequence[Projection] = ()
    views: Mapping[str, ViewLoader] = field(default_factory=dict)
    """The event tail's view loaders, by stream type."""
    workers: Sequence[WorkerFactory] = ()


K = TypeVar("K")
V = TypeVar("V")


def merged(features: Iterable[Feature], part: Callable[[Feature], Mapping[K, V]]) -> dict[K, V]:
    """One map from the features' own; a key two features both claim is a start-up error."""
    result: dict[K, V] = {}
    owners: dict[K, str] = {}
    for feature in features:
        for key, value in part(feature).items():
            if key in result:
                raise ConfigurationError(f"{key!r} is in both {owners[key]} and {feature.name}")
            result[key] = value
            owners[key] = feature.name
    return result
