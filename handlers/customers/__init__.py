"""Customers: registering, profiles and their preferences, reading customers, the customer
summaries read model, and the reactions to a registration.

The package's face: the wiring (who may send what, what is idempotent or cached, and
`register`, the handlers the mediator gets) and every name other code imports from
`handlers.customers`. The messages and handlers live in one module per role:

- `commands`: RegisterCustomer, CreateCustomerProfile (the system's) and UpdatePreferences;
- `queries`: GetCustomers, ListCustomers and CountCustomers, and the customer view;
- `read_model`: the CUSTOMER_SUMMARIES projection;
- `reactions`: the welcome email, the profile and the note to the marketing team.
"""

from __future__ import annotations

from functools import partial

from domain.customers import (
    CUSTOMER_EVENTS,
    Customer,
    CustomerRegistered,
    PreferencesUpdated,
)
from handlers.access import Identity, Policy, anyone, staff, system
from handlers.customers.commands import (
    CreateCustomerProfile,
    EmailAddress,
    Language,
    RegisterCustomer,
    UpdatePreferences,
    create_customer_profile,
    register_customer,
    update_preferences,
)
from handlers.customers.queries import (
    CountCustomers,
    CustomerView,
    GetCustomers,
    ListCustomers,
    count_customers,
    customer_view,
    get_customers,
    list_customers,
    load_customer_views,
    may_see_customer,
)
from handlers.customers.reactions import (
    MARKETING_NOTE,
    PROFILE,
    WELCOME_EMAIL,
    create_profile,
    note_to_marketing,
    send_welcome_email,
)
from handlers.customers.read_model import (
    CUSTOMER_SUMMARIES,
    customer_rows_touched,
    project_customer_summaries,
)
from handlers.feature import Feature, Wiring
from handlers.query_cache import Cached
from handlers.reactions import committed
from handlers.transaction import writes
from mediator import Registry
from persistence.customers import committed_customer

__all__ = [
    "CACHED",
    "CUSTOMER_SUMMARIES",
    "EVENT_TYPES",
    "FEATURE",
    "IDEMPOTENT",
    "MARKETING_NOTE",
    "POLICIES",
    "PROFILE",
    "WELCOME_EMAIL",
    "CountCustomers",
    "CreateCustomerProfile",
    "CustomerView",
    "EmailAddress",
    "GetCustomers",
    "Language",
    "ListCustomers",
    "RegisterCustomer",
    "UpdatePreferences",
    "count_customers",
    "create_customer_profile",
    "create_profile",
    "customer_rows_touched",
    "customer_view",
    "get_customers",
    "list_customers",
    "load_customer_views",
    "may_see_customer",
    "note_to_marketing",
    "project_customer_summaries",
    "register",
    "register_customer",
    "send_welcome_email",
    "update_preferences",
]


def a_customer(_message: object, caller: Identity | None) -> bool:
    """Signed in as a customer: staff have no preferences of their own to change."""
    return caller is not None and caller.customer_id is not None


EVENT_TYPES = CUSTOMER_EVENTS
POLICIES: dict[type, Policy] = {
    RegisterCustomer: anyone,
    # The profile is the registration's reaction: no caller creates one.
    CreateCustomerProfile: system,
    UpdatePreferences: a_customer,
    GetCustomers: anyone,
    # Others are refused with a GraphQL error (UNAUTHENTICATED or FORBIDDEN), not shown an
    # empty list: an empty list would read as "there are no customers".
    ListCustomers: staff,
    CountCustomers: staff,
}
# Not CreateCustomerProfile: created twice, a profile changes nothing, which is the safe
# retry a key would promise (and a keyed command must write, which a second creation does not).
IDEMPOTENT: dict[type, str] = {RegisterCustomer: Customer.kind, UpdatePreferences: Customer.kind}
# Per caller (the default): a customer sees itself only.
CACHED: dict[type, Cached] = {
    GetCustomers: Cached(("customer_summaries",), lambda q: q.ids),
    ListCustomers: Cached(("customer_summaries",)),
    CountCustomers: Cached(("customer_summaries",)),
}


def register(registry: Registry, wiring: Wiring) -> None:
    new_id = partial(wiring.ids, Customer.kind)
    registry.handle(RegisterCustomer, writes(partial(register_customer, new_id=new_id)))
    registry.handle(CreateCustomerProfile, writes(create_customer_profile))
    registry.handle(UpdatePreferences, writes(update_preferences))
    registry.handle(GetCustomers, partial(get_customers, read_engine=wiring.read_engine))
    # Lists, counts and searches grow with the data (database.create_engine).
    scans = wiring.scan_engine
    registry.handle(ListCustomers, partial(list_customers, read_engine=scans))
    registry.handle(CountCustomers, partial(count_customers, read_engine=scans))
    _react(registry, wiring)


def _react(registry: Registry, wiring: Wiring) -> None:
    registered = committed(CustomerRegistered)
    registry.subscribe(registered, create_profile, name=PROFILE)
    mailer = wiring.mailer
    if mailer is None:
        return
    registry.subscribe(registered, partial(send_welcome_email, mailer=mailer), name=WELCOME_EMAIL)
    marketing = wiring.reacting.marketing_email
    if marketing is None:
        # Nobody to tell: no handler, rather than one that reads every registration for nothing.
        return
    lookups = wiring.write_reads_engine
    note = partial(
        note_to_marketing,
        mailer=mailer,
        to=marketing,
        find_customer=None if lookups is None else partial(committed_customer, lookups),
    )
    # One handler for both (one name, one checkpoint): each event's note has its own key.
    registry.subscribe(registered, note, name=MARKETING_NOTE)
    if lookups is not None:
        registry.subscribe(committed(PreferencesUpdated), note, name=MARKETING_NOTE)


FEATURE = Feature(
    "customers",
    event_types=EVENT_TYPES,
    policies=POLICIES,
    register=register,
    idempotent=IDEMPOTENT,
    cached=CACHED,
    projections=(CUSTOMER_SUMMARIES,),
)
