"""Customer profiles and the reactions to a registration: the domain's rules, the commands
through the real mediator and pipeline over in-memory fakes, and the reaction handlers
given a committed event as the reactor gives it."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest

from domain.customers import (
    Customer,
    CustomerProfileCreated,
    CustomerRegistered,
    Preferences,
    PreferencesUpdated,
    language_tag,
)
from domain.errors import ValidationFailed, VersionConflict
from handlers.access import NotAuthorized
from handlers.customers import (
    MARKETING_NOTE,
    PROFILE,
    WELCOME_EMAIL,
    CreateCustomerProfile,
    RegisterCustomer,
    UpdatePreferences,
    note_to_marketing,
    send_welcome_email,
)
from handlers.idempotency import Replayed
from handlers.mail import Email
from handlers.reactions import SYSTEM, Committed, Reactions, committed
from mediator import HANDLER_NAME, Context, Mediator
from orderdesk.bootstrap import EVENT_TYPES
from persistence.event_codec import EventCodec
from persistence.event_log import StoredEvent
from schema.root import build_schema
from tests.unit.fakes import FakeStore, as_customer, as_staff, fake_mediator

E = TypeVar("E")
A_LANGUAGE_TAG = "a language tag such as en, fr or pt-BR"
_positions = itertools.count(1)


class FakeMailer:
    """Keeps what it is asked to send, once per key, as the Mailer port promises."""

    def __init__(self) -> None:
        self.sent: dict[str, Email] = {}

    async def send(self, email: Email, *, key: str, correlation_id: str) -> None:
        self.sent.setdefault(key, email)


def stored(event: object, *, stream_version: int = 1, event_id: str = "") -> StoredEvent:
    position = next(_positions)
    return StoredEvent(
        position=position,
        event_id=event_id or f"event-{position}",
        stream_type="Customer",
        stream_id=getattr(event, "customer_id", "c1"),
        stream_version=stream_version,
        event_type=type(event).__name__,
        event=event,
        occurred_at=datetime.now(UTC),
        correlation_id="request-1",
    )


def notification(event: E, *, event_id: str = "event-1") -> Committed[E]:
    """The event as the reactor hands it to a handler."""
    return committed(type(event))(
        event, event_id, 1, "Customer", "c1", 1, datetime.now(UTC), "request-1"
    )


def handler_context(name: str) -> Context:
    ctx = Context(correlation_id="request-1", identity=SYSTEM)
    ctx.set(HANDLER_NAME, name)
    return ctx


@pytest.fixture
def mediator(store: FakeStore) -> Mediator:
    return fake_mediator(store)


async def register(mediator: Mediator, **fields: Any) -> Customer:
    values = {"name": "Ada", "email": "ada@example.com", **fields}
    written = await mediator.send(RegisterCustomer(**values))
    return Customer(written.entity_id, name=values["name"], email=values["email"])


# ---------------------------------------------------------------- the domain


@pytest.mark.parametrize(
    ("given", "tag"),
    [
        ("en", "en"),
        ("EN", "en"),
        ("pt-br", "pt-BR"),
        ("zh-hant-tw", "zh-Hant-TW"),
        ("es-419", "es-419"),
        ("sr-latn", "sr-Latn"),
        ("fil", "fil"),
    ],
)
def test_a_short_language_tag_is_kept_in_bcp_47_case(given: str, tag: str) -> None:
    assert language_tag(given) == tag


@pytest.mark.parametrize(
    "given",
    [
        "",
        "e",
        "english",
        "en_US",
        "en-",
        "-en",
        "en-US-",
        "en-USA",
        "en-US\n",
        " en",
        "en-US-x-private",
        "\u212aa",  # the Kelvin sign, which a case-insensitive [a-z] would take for a k
        "\uff45\uff4e",  # a fullwidth "en"
        "e" * 100_000,
    ],
)
def test_anything_else_is_not_a_language(given: str) -> None:
    assert language_tag(given) is None


def test_registering_carries_the_choices_on_its_event() -> None:
    customer = Customer.register(
        "c1", name="Ada", email="ada@example.com", marketing_opt_in=True, language="pt-br"
    )
    assert customer.pending_events == [
        CustomerRegistered("c1", "Ada", "ada@example.com", marketing_opt_in=True, language="pt-BR")
    ]
    assert customer.preferences is None


def test_a_registration_logged_before_customers_chose_still_decodes() -> None:
    codec = EventCodec()
    codec.register(EVENT_TYPES)
    old = {"customer_id": "c1", "name": "Ada", "email": "ada@example.com"}
    assert codec.decode("CustomerRegistered", old) == CustomerRegistered(
        "c1", "Ada", "ada@example.com", marketing_opt_in=False, language="en"
    )


def test_a_profile_is_created_once() -> None:
    customer = Customer("c1", name="Ada", email="ada@example.com", version=1)
    customer.create_profile(Preferences(marketing_opt_in=True, language="fr"))
    customer.create_profile(Preferences(marketing_opt_in=False, language="en"))
    assert customer.pending_events == [CustomerProfileCreated("c1", True, "fr")]
    assert (customer.version, customer.preferences) == (2, Preferences(True, "fr"))


@pytest.mark.parametrize(
    ("before", "wanted", "turned_on"),
    [
        (None, Preferences(True, "en"), True),
        (None, Preferences(False, "fr"), False),
        (Preferences(False, "en"), Preferences(True, "en"), True),
        (Preferences(True, "en"), Preferences(True, "fr"), False),
        (Preferences(True, "en"), Preferences(False, "en"), False),
    ],
)
def test_an_update_says_whether_it_turned_marketing_on(
    before: Preferences | None, wanted: Preferences, turned_on: bool
) -> None:
    customer = Customer("c1", name="Ada", email="a@b.co", preferences=before, version=2)
    customer.update_preferences(wanted)
    assert customer.pending_events == [
        PreferencesUpdated("c1", wanted.marketing_opt_in, wanted.language, turned_on)
    ]


def test_the_same_preferences_again_are_a_change_like_any_other() -> None:
    customer = Customer("c1", name="Ada", email="a@b.co", preferences=Preferences(), version=2)
    customer.update_preferences(Preferences(False, "EN"))
    assert customer.pending_events == [PreferencesUpdated("c1", False, "en", False)]
    assert customer.version == 3


# ---------------------------------------------------------------- the commands


async def test_the_system_creates_a_profile_and_again_changes_nothing(
    mediator: Mediator, store: FakeStore
) -> None:
    ada = await register(mediator, marketing_opt_in=True, language="fr")
    create = CreateCustomerProfile(ada.id, True, "fr")
    first = await mediator.send(create, Context(identity=SYSTEM))
    again = await mediator.send(create, Context(identity=SYSTEM))
    assert (first.version, again.version) == (2, 2)
    assert store.events == [
        (ada.id, 1, CustomerRegistered(ada.id, "Ada", "ada@example.com", True, "fr")),
        (ada.id, 2, CustomerProfileCreated(ada.id, True, "fr")),
    ]
    assert store.customers[ada.id].preferences == Preferences(True, "fr")


@pytest.mark.parametrize("ctx", [Context(), as_staff(), as_customer("c1")])
async def test_no_caller_but_the_system_may_create_a_profile(
    mediator: Mediator, store: FakeStore, ctx: Context
) -> None:
    ada = await register(mediator)
    with pytest.raises(NotAuthorized):
        await mediator.send(CreateCustomerProfile(ada.id), ctx)
    assert len(store.log) == 1


async def test_a_customer_changes_its_own_preferences(mediator: Mediator, store: FakeStore) -> None:
    ada = await register(mediator)
    await mediator.send(CreateCustomerProfile(ada.id), Context(identity=SYSTEM))
    written = await mediator.send(
        UpdatePreferences(marketing_opt_in=True, language="pt-br", expected_version=2),
        as_customer(ada.id),
    )
    assert written.version == 3
    assert store.customers[ada.id].preferences == Preferences(True, "pt-BR")
    assert store.events[-1] == (ada.id, 3, PreferencesUpdated(ada.id, True, "pt-BR", True))


async def test_a_retry_with_its_key_answers_the_first_change_again(
    mediator: Mediator, store: FakeStore
) -> None:
    ada = await register(mediator)
    await mediator.send(CreateCustomerProfile(ada.id), Context(identity=SYSTEM))
    change = UpdatePreferences(
        marketing_opt_in=True, language="fr", expected_version=2, idempotency_key="k1"
    )
    first = await mediator.send(change, as_customer(ada.id))
    again = await mediator.send(change, as_customer(ada.id))
    assert isinstance(again, Replayed)
    assert (first.version, again.version) == (3, 3)
    assert len(store.log) == 3


async def test_a_stale_version_changes_nothing(mediator: Mediator, store: FakeStore) -> None:
    ada = await register(mediator)
    await mediator.send(CreateCustomerProfile(ada.id), Context(identity=SYSTEM))
    with pytest.raises(VersionConflict) as refused:
        await mediator.send(
            UpdatePreferences(marketing_opt_in=True, language="en", expected_version=1),
            as_customer(ada.id),
        )
    assert (refused.value.expected, refused.value.actual) == (1, 2)
    assert len(store.log) == 2


async def test_a_bad_language_is_refused_by_name(mediator: Mediator, store: FakeStore) -> None:
    ada = await register(mediator)
    with pytest.raises(ValidationFailed) as refused:
        await mediator.send(
            UpdatePreferences(marketing_opt_in=True, language="français"), as_customer(ada.id)
        )
    assert [(i.path, i.message) for i in refused.value.issues] == [(("language",), A_LANGUAGE_TAG)]
    assert len(store.log) == 1


@pytest.mark.parametrize("ctx", [Context(), as_staff(), as_customer("c404")])
async def test_only_a_registered_customer_has_preferences_to_change(
    mediator: Mediator, store: FakeStore, ctx: Context
) -> None:
    await register(mediator)
    with pytest.raises(NotAuthorized):
        await mediator.send(UpdatePreferences(marketing_opt_in=True, language="en"), ctx)
    assert len(store.log) == 1


async def test_an_update_before_the_profile_wins_over_the_registrations_choice(
    mediator: Mediator, store: FakeStore
) -> None:
    ada = await register(mediator, marketing_opt_in=True)
    await mediator.send(
        UpdatePreferences(marketing_opt_in=False, language="de"), as_customer(ada.id)
    )
    await mediator.send(CreateCustomerProfile(ada.id, True, "en"), Context(identity=SYSTEM))
    assert store.customers[ada.id].preferences == Preferences(False, "de")
    assert [type(event) for _, _, event in store.events] == [
        CustomerRegistered,
        PreferencesUpdated,
    ]


# ---------------------------------------------------------------- the reactions


async def test_the_profile_reaction_creates_the_profile_once_however_often_delivered(
    mediator: Mediator, store: FakeStore
) -> None:
    ada = await register(mediator, marketing_opt_in=True, language="fr")
    [(_, _, registered)] = store.events
    reactions = Reactions(mediator, EVENT_TYPES)
    assert "CustomerRegistered" in reactions.takes[PROFILE]
    event = stored(registered, event_id="registered-1")
    for _ in range(2):
        assert await reactions.deliver(event, to={PROFILE}) == {}
    assert store.customers[ada.id].preferences == Preferences(True, "fr")
    assert len(store.log) == 2
    # The command records what it reacted to, and the request the registration came from.
    assert (store.log[1].command, store.log[1].causation_id) == (
        "CreateCustomerProfile",
        "registered-1",
    )
    assert store.log[1].correlation_id == "request-1"


async def test_a_welcome_email_is_sent_to_the_customer_once_per_event() -> None:
    mailer = FakeMailer()
    registered = CustomerRegistered("c1", "Ada\r\nBcc: eve@example.com", "ada@example.com")
    for _ in range(2):
        await send_welcome_email(
            notification(registered), handler_context(WELCOME_EMAIL), mailer=mailer
        )
    [(key, email)] = mailer.sent.items()
    assert key == f"{WELCOME_EMAIL}:event-1"
    assert email.to == "ada@example.com"
    # The customer's own text never breaks the subject's line.
    assert email.subject == "Welcome, Ada Bcc: eve@example.com"
    assert "Thank you for registering" in email.text
    assert email.html is not None
    assert "Ada\r\nBcc" in email.html


async def test_html_bodies_escape_what_the_customer_wrote() -> None:
    mailer = FakeMailer()
    registered = CustomerRegistered("c1", "<script>alert(1)</script>", "ada@example.com")
    await send_welcome_email(
        notification(registered), handler_context(WELCOME_EMAIL), mailer=mailer
    )
    [email] = mailer.sent.values()
    assert email.html is not None
    assert "<script>" not in email.html
    assert "&lt;script&gt;" in email.html
    assert "<script>alert(1)</script>" in email.text


async def test_marketing_hears_of_a_customer_who_opted_in_at_registration() -> None:
    mailer = FakeMailer()
    ctx = handler_context(MARKETING_NOTE)
    opted_in = CustomerRegistered("c1", "Ada", "ada@example.com", True, "fr")
    not_opted_in = CustomerRegistered("c2", "Bob", "bob@example.com", False, "en")
    await note_to_marketing(
        notification(opted_in, event_id="e1"), ctx, mailer=mailer, to="marketing@shop.test"
    )
    await note_to_marketing(
        notification(not_opted_in, event_id="e2"), ctx, mailer=mailer, to="marketing@shop.test"
    )
    [(key, email)] = mailer.sent.items()
    assert key == f"{MARKETING_NOTE}:e1"
    assert email.to == "marketing@shop.test"
    assert email.subject == "Marketing opt-in: ada@example.com"
    assert "Ada <ada@example.com>" in email.text
    assert "when registering" in email.text


async def test_marketing_hears_of_a_customer_who_turned_marketing_on_later() -> None:
    mailer = FakeMailer()
    ctx = handler_context(MARKETING_NOTE)
    ada = Customer("c1", name="Ada", email="ada@example.com", version=3)

    async def find_customer(customer_id: str) -> Customer | None:
        return ada if customer_id == "c1" else None

    turned_on = PreferencesUpdated("c1", True, "en", marketing_turned_on=True)
    language_only = PreferencesUpdated("c1", True, "fr", marketing_turned_on=False)
    for event_id, event in (("e1", turned_on), ("e2", language_only)):
        await note_to_marketing(
            notification(event, event_id=event_id),
            ctx,
            mailer=mailer,
            to="marketing@shop.test",
            find_customer=find_customer,
        )
    [(key, email)] = mailer.sent.items()
    assert key == f"{MARKETING_NOTE}:e1"
    assert "Ada <ada@example.com>" in email.text
    assert "in their preferences" in email.text


def test_no_client_can_even_name_the_profiles_command() -> None:
    mutation_type = build_schema()._schema.mutation_type
    assert mutation_type is not None
    assert "updatePreferences" in mutation_type.fields
    assert not [name for name in mutation_type.fields if "profile" in name.lower()]


async def test_marketing_is_not_told_of_an_opt_in_withdrawn_before_the_note_went_out() -> None:
    mailer = FakeMailer()
    now_opted_out = Customer(
        "c1", name="Ada", email="ada@example.com", preferences=Preferences(False, "en")
    )

    async def find_customer(customer_id: str) -> Customer | None:
        return now_opted_out

    await note_to_marketing(
        notification(PreferencesUpdated("c1", True, "en", marketing_turned_on=True)),
        handler_context(MARKETING_NOTE),
        mailer=mailer,
        to="marketing@shop.test",
        find_customer=find_customer,
    )
    assert mailer.sent == {}
