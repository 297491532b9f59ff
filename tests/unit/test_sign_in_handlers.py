"""The sign-in commands through the service's own pipeline over the in-memory store, and the
code's email, handed a fake notification as the reactor would."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from domain.errors import ValidationFailed
from domain.sign_in import (
    MAX_WRONG_ATTEMPTS,
    SIGN_IN_EVENTS,
    CodeKey,
    CodeState,
    CustomerSignedIn,
    SignInCodeIssued,
    SignInCodeVoided,
)
from handlers.access import CLIENT_ADDRESS
from handlers.customers import RegisterCustomer
from handlers.mail import Email
from handlers.rate_limit import RateLimited
from handlers.reactions import SYSTEM, Committed, committed
from handlers.sign_in import (
    CODE_EMAIL,
    KEY_PURPOSE,
    CodeRequested,
    RequestSignInCode,
    SignIn,
    SignInOutcome,
    email_key,
    email_sign_in_code,
    limit_per_email,
    validity,
)
from mediator import HANDLER_NAME, Context, Mediator
from orderdesk.bootstrap import bootstrap
from orderdesk.service_secrets import service_key
from orderdesk.settings import Settings
from persistence.event_codec import EventCodec
from tests.unit.fakes import FakeStore, counted_ids

SETTINGS = Settings(
    database_url="sqlite+aiosqlite:///:memory:",
    jwt_secret=SecretStr("a-secret-for-the-sign-in-tests-only-0123456789"),
)
KEY = CodeKey(service_key(SETTINGS)(KEY_PURPOSE))
START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


class FakeMailer:
    """Keeps what it is asked to send, once per key, as the Mailer port promises."""

    def __init__(self) -> None:
        self.sent: dict[str, Email] = {}

    async def send(self, email: Email, *, key: str, correlation_id: str) -> None:
        self.sent.setdefault(key, email)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def mediator(store: FakeStore, clock: Clock) -> Mediator:
    store.clock = clock
    built = bootstrap(SETTINGS, store=store, ids=counted_ids(), clock=clock).mediator
    await built.send(RegisterCustomer(name="Ada", email="ada@example.com"))  # c1
    return built


def issued(store: FakeStore) -> list[SignInCodeIssued]:
    return [e.event for e in store.log if isinstance(e.event, SignInCodeIssued)]


def latest_code(store: FakeStore) -> str:
    return KEY.code_for(issued(store)[-1].code_id)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


async def test_a_request_issues_a_code_the_log_names_by_id_only(
    mediator: Mediator, store: FakeStore
) -> None:
    answer = await mediator.send(RequestSignInCode(" Ada@Example.com "))

    assert answer == CodeRequested("ada@example.com", 600.0)
    [event] = issued(store)
    assert event.customer_id == "c1"
    assert event.email == "ada@example.com"
    assert event.expires_at == START + timedelta(minutes=10)
    # Its own stream, not the customer's: the log's key is (stream id, version).
    assert store.log[-1].stream_id == "s1"
    codec = EventCodec()
    codec.register(SIGN_IN_EVENTS)
    assert latest_code(store) not in repr(codec.encode(event))
    [codes] = store.sign_in_codes.values()
    assert codes.code is not None
    assert codes.code.state is CodeState.ACTIVE


async def test_an_unknown_address_is_answered_alike_and_nothing_is_written(
    mediator: Mediator, store: FakeStore
) -> None:
    events = len(store.log)

    answer = await mediator.send(RequestSignInCode("nobody@example.com"))

    assert answer == CodeRequested("nobody@example.com", 600.0)
    assert len(store.log) == events
    assert store.sign_in_codes == {}


async def test_the_code_signs_in_once(mediator: Mediator, store: FakeStore) -> None:
    await mediator.send(RequestSignInCode("ada@example.com"))
    code = latest_code(store)

    assert await mediator.send(SignIn("ADA@example.com", code)) == SignInOutcome("c1")
    assert isinstance(store.log[-1].event, CustomerSignedIn)
    assert await mediator.send(SignIn("ada@example.com", code)) == SignInOutcome(None)


async def test_a_wrong_code_is_refused_and_its_attempt_is_kept(
    mediator: Mediator, store: FakeStore
) -> None:
    await mediator.send(RequestSignInCode("ada@example.com"))
    code = latest_code(store)

    assert await mediator.send(SignIn("ada@example.com", wrong(code))) == SignInOutcome(None)

    # Committed although the answer was no: the count survives the request.
    [codes] = store.sign_in_codes.values()
    assert codes.code is not None
    assert codes.code.attempts == 1
    assert await mediator.send(SignIn("ada@example.com", code)) == SignInOutcome("c1")


async def test_five_wrong_codes_void_it_and_the_right_one_fails_after(
    mediator: Mediator, store: FakeStore
) -> None:
    await mediator.send(RequestSignInCode("ada@example.com"))
    code = latest_code(store)
    for _ in range(MAX_WRONG_ATTEMPTS):
        assert await mediator.send(SignIn("ada@example.com", wrong(code))) == SignInOutcome(None)

    assert isinstance(store.log[-1].event, SignInCodeVoided)
    assert await mediator.send(SignIn("ada@example.com", code)) == SignInOutcome(None)
    # A new code works again.
    await mediator.send(RequestSignInCode("ada@example.com"))
    assert await mediator.send(SignIn("ada@example.com", latest_code(store))) == SignInOutcome("c1")


async def test_a_second_request_voids_the_first_code(mediator: Mediator, store: FakeStore) -> None:
    await mediator.send(RequestSignInCode("ada@example.com"))
    first = latest_code(store)
    await mediator.send(RequestSignInCode("ada@example.com"))
    second = latest_code(store)

    # One aggregate for the customer, on one stream, whatever the number of codes.
    assert len(store.sign_in_codes) == 1
    assert await mediator.send(SignIn("ada@example.com", first)) == SignInOutcome(None)
    assert await mediator.send(SignIn("ada@example.com", second)) == SignInOutcome("c1")


async def test_an_expired_code_fails(mediator: Mediator, store: FakeStore, clock: Clock) -> None:
    await mediator.send(RequestSignInCode("ada@example.com"))
    clock.now = START + timedelta(minutes=10)

    assert await mediator.send(SignIn("ada@example.com", latest_code(store))) == SignInOutcome(None)


async def test_a_code_for_an_unknown_address_is_refused_alike(
    mediator: Mediator, store: FakeStore
) -> None:
    events = len(store.log)
    assert await mediator.send(SignIn("nobody@example.com", "123456")) == SignInOutcome(None)
    assert len(store.log) == events


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (lambda: SignIn("ada@example.com", "12345"), "code"),
        (lambda: SignIn("ada@example.com", "12345a"), "code"),
        (lambda: SignIn("ada@example.com", "\uff11" * 6), "code"),
        (lambda: SignIn("not an address", "123456"), "email"),
        (lambda: RequestSignInCode("not an address"), "email"),
    ],
)
async def test_malformed_input_is_refused_before_anything_is_read(
    mediator: Mediator, store: FakeStore, message: Callable[[], Any], field: str
) -> None:
    events = len(store.log)
    with pytest.raises(ValidationFailed) as refused:
        await mediator.send(message())
    assert [issue.path for issue in refused.value.issues] == [(field,)]
    assert len(store.log) == events


def test_the_code_is_not_in_the_command_s_repr() -> None:
    assert "654321" not in repr(SignIn("ada@example.com", "654321"))


# ---------------------------------------------------------------- the email


def notification(event: SignInCodeIssued, event_id: str = "event-1") -> Committed[Any]:
    return committed(SignInCodeIssued)(
        event, event_id, 1, "SignInCodes", "s1", 1, START, "request-1"
    )


def handler_context() -> Context:
    ctx = Context(correlation_id="request-1", identity=SYSTEM)
    ctx.set(HANDLER_NAME, CODE_EMAIL)
    return ctx


EVENT = SignInCodeIssued("c1", "ada@example.com", "code-1", START + timedelta(minutes=10))


async def test_the_email_carries_the_code_its_validity_and_what_to_do_if_unasked() -> None:
    mailer = FakeMailer()

    await email_sign_in_code(
        notification(EVENT),
        handler_context(),
        mailer=mailer,
        key=lambda: KEY,
        clock=lambda: START,
        valid_for=600.0,
    )

    [(key, email)] = mailer.sent.items()
    assert key == f"{CODE_EMAIL}:event-1"
    assert email.to == "ada@example.com"
    code = KEY.code_for("code-1")
    assert code in email.text
    assert email.html is not None
    assert code in email.html
    # Not in the subject: that is kept beside the key (and shown by `orderdesk trace`).
    assert code not in email.subject
    for body in (email.text, email.html):
        assert "valid for 10 minutes" in body
        assert "If you did not ask for this, ignore it" in body


async def test_a_redelivery_sends_under_the_same_key() -> None:
    mailer = FakeMailer()
    for _ in range(2):
        await email_sign_in_code(
            notification(EVENT),
            handler_context(),
            mailer=mailer,
            key=lambda: KEY,
            clock=lambda: START,
            valid_for=600.0,
        )
    assert list(mailer.sent) == [f"{CODE_EMAIL}:event-1"]


async def test_a_code_that_expired_before_its_email_went_is_not_sent() -> None:
    mailer = FakeMailer()
    await email_sign_in_code(
        notification(EVENT),
        handler_context(),
        mailer=mailer,
        key=lambda: KEY,
        clock=lambda: EVENT.expires_at,
        valid_for=600.0,
    )
    assert mailer.sent == {}


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (600, "10 minutes"),
        (60, "1 minute"),
        (3600, "1 hour"),
        (7200, "2 hours"),
        (90, "2 minutes"),
        (30, "30 seconds"),
        (0.5, "1 second"),
    ],
)
def test_validity_in_words(seconds: float, said: str) -> None:
    assert validity(seconds) == said


# ---------------------------------------------------------------- the budgets per email


async def test_the_budget_per_email_counts_a_digest_of_the_normalized_address() -> None:
    counted: list[str] = []

    async def admit(key: str) -> float | None:
        counted.append(key)
        return 7.0 if len(counted) > 1 else None

    behavior = limit_per_email(admit)
    ctx = Context()
    ctx.set(CLIENT_ADDRESS, "203.0.113.9")

    async def call_next() -> object:
        return "done"

    assert await behavior(RequestSignInCode("Ada@Example.com"), call_next, ctx) == "done"
    with pytest.raises(RateLimited) as refused:
        await behavior(SignIn(" ada@example.com", "123456"), call_next, ctx)

    assert refused.value.retry_after == 7.0
    assert counted == [email_key("ada@example.com")] * 2
    assert "ada" not in counted[0]
    # From inside the service (no client address), nothing is counted.
    assert await behavior(RequestSignInCode("ada@example.com"), call_next, Context()) == "done"
    assert len(counted) == 2
