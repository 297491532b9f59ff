"""Webhooks' pure rules: the aggregate, the events offered, addresses webhooks may reach,
the signature, the retry schedule and the bodies sent."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from ipaddress import ip_address

import pytest

from domain.errors import ValidationFailed
from domain.orders import Address, OrderLine, OrderPlaced
from domain.products import ProductRestocked
from domain.webhooks import (
    DISABLED_BY_STAFF,
    MAX_URL,
    OFFERED_EVENTS,
    Webhook,
    WebhookDisabled,
    WebhookRegistered,
)
from handlers.webhooks.addresses import Resolver, UnreachableAddress, checked_addresses, refusal
from handlers.webhooks.backoff import MAX_RETRY_DELAY, next_attempt, retry_delay
from handlers.webhooks.payloads import delivery_body, delivery_id, event_data, global_id
from handlers.webhooks.signature import new_secret, signature, verify
from schema import ids

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def registered(
    url: str = "https://hooks.example.com/orderdesk", events: Sequence[str] = ("ORDER_PLACED",)
) -> Webhook:
    return Webhook.register("w1", url=url, events=events, secret="whsec_x", created_at=NOW)


def issues(
    url: str = "https://hooks.example.com/", events: Sequence[str] = ("ORDER_PLACED",)
) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as refused:
        registered(url, events)
    return {".".join(i.path): i.message for i in refused.value.issues}


# ---------------------------------------------------------------- the aggregate


def test_the_offered_events_are_the_entities_own_and_nothing_internal() -> None:
    assert list(OFFERED_EVENTS) == [
        "ORDER_PLACED",
        "ORDER_CONFIRMED",
        "ORDER_SHIPPED",
        "ORDER_DELIVERED",
        "ORDER_CANCELLED",
        "PRODUCT_CREATED",
        "PRODUCT_UPDATED",
        "PRODUCT_RESTOCKED",
        "PRODUCT_DELETED",
        "CUSTOMER_REGISTERED",
    ]
    assert OFFERED_EVENTS["ORDER_PLACED"] is OrderPlaced


def test_registering_records_the_url_and_events_but_never_the_secret() -> None:
    webhook = registered(" https://hooks.example.com/a?b=c ", ["ORDER_PLACED", "PRODUCT_DELETED"])
    assert webhook.pending_events == [
        WebhookRegistered(
            "w1", "https://hooks.example.com/a?b=c", ("ORDER_PLACED", "PRODUCT_DELETED")
        )
    ]
    assert "whsec_x" not in repr(webhook.pending_events)
    assert (webhook.active, webhook.version) == (True, 1)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "a URL is required"),
        ("https://example.com/" + "a" * MAX_URL, f"a URL is at most {MAX_URL} characters"),
        ("https://example.com/a b", "a URL cannot contain spaces or control characters"),
        ("https://example.com/\r\nX-Evil: 1", "a URL cannot contain spaces or control characters"),
        ("ftp://example.com/", "a webhook URL starts with https:// or http://"),
        ("javascript:alert(1)", "a webhook URL starts with https:// or http://"),
        ("example.com/hooks", "a webhook URL starts with https:// or http://"),
        ("https://user:pass@example.com/", "a webhook URL cannot carry a user name or password"),
        ("https://token@example.com/", "a webhook URL cannot carry a user name or password"),
        ("https:///path", "a webhook URL names a host"),
        ("https://example.com:99999/", "the port must be a number from 1 to 65535"),
        ("https://example.com:0/", "the port must be a number from 1 to 65535"),
        ("https://example.com:http/", "the port must be a number from 1 to 65535"),
    ],
)
def test_a_url_that_is_no_webhook_endpoint_is_refused(url: str, message: str) -> None:
    assert issues(url=url)["url"].startswith(message)


def test_events_are_at_least_one_each_once_and_offered() -> None:
    assert issues(events=[]) == {"events": "choose at least one event"}
    assert issues(events=["ORDER_PLACED", "ORDER_PLACED", "SIGN_IN_CODE_REQUESTED"]) == {
        "events.1": "this event is listed already",
        "events.2": "webhooks are not sent for this event",
    }


def test_every_problem_is_reported_at_once() -> None:
    assert set(issues(url="ftp://x", events=[])) == {"url", "events"}


def test_disabling_records_the_reason_once() -> None:
    webhook = registered()
    webhook.mark_stored()
    webhook.disable("  ")
    webhook.disable("again")
    assert webhook.pending_events == [WebhookDisabled("w1", DISABLED_BY_STAFF)]
    assert (webhook.active, webhook.disabled_reason, webhook.version) == (
        False,
        DISABLED_BY_STAFF,
        2,
    )
    with pytest.raises(ValidationFailed):
        webhook.disable("x" * 501)


# ---------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # the cloud's metadata service
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:10.0.0.5",
        "::ffff:169.254.169.254",
        "2002:a00:1::",  # 6to4 of 10.0.0.1
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo, client 10.0.0.1
        "::127.0.0.1",  # IPv4-compatible
    ],
)
def test_private_and_special_addresses_are_refused(address: str) -> None:
    assert refusal(ip_address(address)) is not None


@pytest.mark.parametrize(
    "address",
    ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "2002:808:808::"],
)
def test_public_addresses_may_be_reached(address: str) -> None:
    assert refusal(ip_address(address)) is None


def resolving(*answers: str) -> Resolver:
    async def resolve(host: str, port: int) -> Sequence[str]:
        if not answers:
            raise OSError("Name or service not known")
        return answers

    return resolve


async def test_a_name_with_one_private_address_among_public_ones_is_refused_whole() -> None:
    resolve = resolving("93.184.215.14", "10.0.0.5")
    with pytest.raises(UnreachableAddress, match=r"10\.0\.0\.5 is a private"):
        await checked_addresses(
            "hooks.example.com", 443, allow_private=False, resolve=resolve, timeout=1
        )
    found = await checked_addresses(
        "hooks.example.com", 443, allow_private=True, resolve=resolve, timeout=1
    )
    assert [str(a) for a in found] == ["93.184.215.14", "10.0.0.5"]


async def test_a_literal_address_is_checked_unlooked_up_and_a_missing_name_is_unreachable() -> None:
    with pytest.raises(UnreachableAddress, match="::1 is a private"):
        await checked_addresses("[::1]", 80, allow_private=False, resolve=resolving(), timeout=1)
    with pytest.raises(UnreachableAddress, match="could not be found"):
        await checked_addresses(
            "nowhere.invalid", 80, allow_private=False, resolve=resolving(), timeout=1
        )


# ---------------------------------------------------------------- the signature


def test_the_signature_is_hmac_sha256_of_the_timestamp_and_the_body() -> None:
    # As a receiver in any language would compute it, by hand.
    body = b'{"id":"x"}'
    expected = hmac.new(b"whsec_test", b"1733000000." + body, hashlib.sha256).hexdigest()
    assert signature("whsec_test", 1733000000, body) == f"t=1733000000,v1={expected}"


def test_a_receiver_accepts_the_signature_and_nothing_altered_or_old() -> None:
    secret, body = new_secret(), b'{"type":"ORDER_PLACED"}'
    header = signature(secret, 1_000_000, body)
    assert verify(header, secret, body, now=1_000_100)
    assert verify(f"v0=zzz,{header},v1=other", secret, body, now=1_000_000)
    assert not verify(header, secret, body + b" ", now=1_000_000)
    assert not verify(header, new_secret(), body, now=1_000_000)
    assert not verify(header, secret, body, now=1_000_000 + 301)
    assert not verify("t=abc,v1=00", secret, body, now=1_000_000)
    assert secret.startswith("whsec_")
    assert len(secret) > 40


# ---------------------------------------------------------------- retries


def test_retries_back_off_exponentially_up_to_a_cap_with_a_little_jitter() -> None:
    delays = [retry_delay(n, first=10, jitter=0) for n in range(1, 12)]
    assert delays[:5] == [10, 20, 40, 80, 160]
    assert delays[-1] == MAX_RETRY_DELAY
    assert retry_delay(1, first=10, jitter=0.999) == pytest.approx(12, abs=0.01)
    assert retry_delay(10_000, first=10, jitter=0.5) == MAX_RETRY_DELAY * 1.1
    # A first delay above the cap is the cap.
    assert retry_delay(3, first=7_200, jitter=0) == 7_200


def test_a_delivery_is_given_up_once_its_next_retry_would_fall_past_the_retry_period() -> None:
    created = NOW
    kept = next_attempt(created, NOW + timedelta(seconds=50), 1, first=10, retry_for=60, jitter=0)
    assert kept == NOW + timedelta(seconds=60)
    assert (
        next_attempt(created, NOW + timedelta(seconds=51), 1, first=10, retry_for=60, jitter=0)
        is None
    )


# ---------------------------------------------------------------- bodies


def test_global_ids_in_bodies_are_the_apis_own() -> None:
    for kind, local in (("Order", "o1"), ("Customer", "0123abcd" * 4), ("WebhookDelivery", "é")):
        assert global_id(kind, local) == ids.global_id(kind, local)


def test_an_events_data_is_its_fields_with_public_ids_and_exact_amounts() -> None:
    placed = OrderPlaced(
        "o1",
        "c1",
        "Ada",
        "ada@example.com",
        (OrderLine("p1", "Anvil", Decimal("19.50"), 2),),
        "USD",
        Decimal("39.00"),
        Address("1 Main St", "Springfield", "12345", "US"),
        "",
    )
    data = event_data(placed)
    assert data["orderId"] == ids.global_id("Order", "o1")
    assert data["customerId"] == ids.global_id("Customer", "c1")
    assert data["lines"] == [
        {
            "productId": ids.global_id("Product", "p1"),
            "productName": "Anvil",
            "unitPrice": "19.50",
            "quantity": 2,
        }
    ]
    assert data["total"] == "39.00"
    assert data["shippingAddress"]["postalCode"] == "12345"
    assert event_data(ProductRestocked("p1", 5, 8)) == {
        "productId": ids.global_id("Product", "p1"),
        "quantity": 5,
        "stock": 8,
    }


def test_a_body_names_its_delivery_and_event_and_a_delivery_id_is_stable() -> None:
    assert delivery_id("w1", "e1") == delivery_id("w1", "e1") != delivery_id("w2", "e1")
    body = json.loads(
        delivery_body(
            "d1", event_type="PRODUCT_RESTOCKED", occurred_at=NOW, position=42, data={"a": 1}
        )
    )
    assert body == {
        "id": ids.global_id("WebhookDelivery", "d1"),
        "type": "PRODUCT_RESTOCKED",
        "occurredAt": "2026-12-01T12:00:00+00:00",
        "position": "42",
        "data": {"a": 1},
    }
