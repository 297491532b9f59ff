"""Webhooks' handlers over fakes: the commands through the real mediator and pipeline, the
address check, and the fan-out (once per webhook and event)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from domain.errors import NotFound, ValidationFailed
from domain.products import ProductCreated, ProductRestocked
from domain.webhooks import WebhookDisabled, WebhookRegistered
from handlers.access import NotAuthorized
from handlers.reactions import committed
from handlers.webhooks import CheckWebhookUrl, DisableWebhook, RegisteredWebhook, RegisterWebhook
from handlers.webhooks.addresses import Resolver
from handlers.webhooks.commands import check_webhook_url
from handlers.webhooks.fan_out import Doorbell, fan_out
from mediator import Context, Mediator
from orderdesk.settings import Settings
from schema import ids
from tests.unit.fakes import FakeStore, as_customer, as_staff, fake_mediator
from tests.unit.webhook_book import FakeBook

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HOOK = "https://hooks.example.com/orderdesk"


@pytest.fixture
def mediator(store: FakeStore) -> Mediator:
    return fake_mediator(store)


# ---------------------------------------------------------------- commands


async def test_staff_register_a_webhook_whose_secret_only_the_answer_shows(
    mediator: Mediator, store: FakeStore
) -> None:
    written = await mediator.send(
        RegisterWebhook(HOOK, ("ORDER_PLACED", "PRODUCT_RESTOCKED")), as_staff()
    )
    assert isinstance(written, RegisteredWebhook)
    assert written.secret.startswith("whsec_")
    assert written.secret not in repr(written)
    assert store.webhooks["w1"].secret == written.secret
    assert store.events == [
        ("w1", 1, WebhookRegistered("w1", HOOK, ("ORDER_PLACED", "PRODUCT_RESTOCKED")))
    ]
    again = await mediator.send(RegisterWebhook(HOOK, ("ORDER_PLACED",)), as_staff())
    assert isinstance(again, RegisteredWebhook)
    assert again.secret != written.secret


@pytest.mark.parametrize("ctx", [Context(), as_customer("c1")])
async def test_only_staff_may_touch_webhooks(
    mediator: Mediator, store: FakeStore, ctx: Context
) -> None:
    with pytest.raises(NotAuthorized):
        await mediator.send(RegisterWebhook(HOOK, ("ORDER_PLACED",)), ctx)
    with pytest.raises(NotAuthorized):
        await mediator.send(DisableWebhook("w1"), ctx)
    assert store.events == []


@pytest.mark.parametrize(
    "url",
    [
        "https://10.0.0.1/hook",
        "http://127.0.0.1:8080/",
        "http://[::1]/",
        "http://[::ffff:192.168.0.1]/",
        "http://localhost:3000/",
        "http://api.localhost/",
        "http://localhost./",
    ],
)
async def test_a_private_address_in_the_url_is_refused_by_the_command_too(
    store: FakeStore, url: str
) -> None:
    refusing = fake_mediator(store)
    with pytest.raises(ValidationFailed) as refused:
        await refusing.send(RegisterWebhook(url, ("ORDER_PLACED",)), as_staff())
    assert [i.path for i in refused.value.issues] == [("url",)]
    allowing = fake_mediator(
        store, Settings(database_url="sqlite+aiosqlite:///:memory:", webhook_allow_private=True)
    )
    await allowing.send(RegisterWebhook(url, ("ORDER_PLACED",)), as_staff())
    assert len(store.webhooks) == 1


async def test_a_url_the_courier_could_never_send_to_is_refused(
    mediator: Mediator, store: FakeStore
) -> None:
    with pytest.raises(ValidationFailed, match="cannot be sent to"):
        await mediator.send(
            RegisterWebhook("https://\N{SNOWMAN}.example/", ("ORDER_PLACED",)), as_staff()
        )
    assert store.events == []


async def test_too_many_events_or_too_long_a_url_is_refused_before_anything_is_read(
    mediator: Mediator, store: FakeStore
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        await mediator.send(
            RegisterWebhook("https://x.example/" + "a" * 5_000, ("X",) * 11), as_staff()
        )
    assert {i.path for i in refused.value.issues} == {("url",), ("events",)}
    assert store.commits == 0


async def test_disabling_records_why_once_and_an_unknown_webhook_is_not_found(
    mediator: Mediator, store: FakeStore
) -> None:
    await mediator.send(RegisterWebhook(HOOK, ("ORDER_PLACED",)), as_staff())
    await mediator.send(DisableWebhook("w1", reason="moved"), as_staff())
    await mediator.send(DisableWebhook("w1", reason="again"), as_staff())
    assert store.events[1:] == [("w1", 2, WebhookDisabled("w1", "moved"))]
    assert not store.webhooks["w1"].active
    with pytest.raises(NotFound):
        await mediator.send(DisableWebhook("w404"), as_staff())


def resolving(*answers: str) -> Resolver:
    async def resolve(host: str, port: int) -> Sequence[str]:
        if not answers:
            raise OSError("Name or service not known")
        return answers

    return resolve


async def test_the_check_before_registering_refuses_a_host_that_resolves_privately() -> None:
    async def check(url: str, *answers: str, allow_private: bool = False) -> None:
        await check_webhook_url(
            CheckWebhookUrl(url),
            Context(),
            allow_private=allow_private,
            timeout=1,
            resolve=resolving(*answers),
        )

    await check(HOOK, "93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c")
    with pytest.raises(ValidationFailed, match=r"169\.254\.169\.254 is a private"):
        await check(HOOK, "169.254.169.254")
    with pytest.raises(ValidationFailed, match="could not be found"):
        await check(HOOK)
    with pytest.raises(ValidationFailed, match="::1 is a private"):
        await check("https://[::1]:8443/")
    # Allowed, or left to the command to refuse with the rest: nothing is looked up.
    await check(HOOK, "10.0.0.1", allow_private=True)
    await check("ftp://nowhere")


# ---------------------------------------------------------------- the fan-out


def restocked(event_id: str = "e1", position: int = 7) -> Any:
    return committed(ProductRestocked)(
        ProductRestocked("p1", 5, 8), event_id, position, "Product", "p1", 3, NOW, "req-1"
    )


async def test_an_event_fans_out_once_per_webhook_whatever_the_redeliveries() -> None:
    book, doorbell = FakeBook(), Doorbell()
    asked: list[tuple[str, datetime]] = []

    async def subscribers(event_type: str, occurred_at: datetime) -> Sequence[str]:
        asked.append((event_type, occurred_at))
        return ["w1", "w2"]

    async def deliver(notification: Any) -> None:
        await fan_out(
            notification,
            Context(),
            subscribers=subscribers,
            book=book,
            clock=lambda: NOW + timedelta(seconds=1),
            doorbell=doorbell,
        )

    await deliver(restocked())
    first = dict(book.deliveries)
    await deliver(restocked())
    assert book.deliveries == first
    assert asked[0] == ("PRODUCT_RESTOCKED", NOW)
    assert sorted(book.deliveries) == [("w1", "e1"), ("w2", "e1")]
    one = book.deliveries[("w1", "e1")]
    assert (one.event_type, one.position, one.correlation_id) == ("PRODUCT_RESTOCKED", 7, "req-1")
    body = json.loads(one.payload)
    assert body["id"] == ids.global_id("WebhookDelivery", one.id)
    assert body["data"] == {
        "productId": ids.global_id("Product", "p1"),
        "quantity": 5,
        "stock": 8,
    }
    assert one.id != book.deliveries[("w2", "e1")].id
    await deliver(restocked("e2", 8))
    assert len(book.deliveries) == 4


async def test_an_event_nobody_takes_writes_nothing() -> None:
    book = FakeBook()

    async def nobody(event_type: str, occurred_at: datetime) -> Sequence[str]:
        return []

    created = committed(ProductCreated)(
        ProductCreated("p1", "A", "Anvil", "", Decimal(5), "USD", 1),
        "e1",
        1,
        "Product",
        "p1",
        1,
        NOW,
        "req",
    )
    await fan_out(
        created, Context(), subscribers=nobody, book=book, clock=lambda: NOW, doorbell=Doorbell()
    )
    assert book.deliveries == {}
