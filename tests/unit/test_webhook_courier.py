"""The webhook courier over fakes: what it posts, how it records attempts, retries with
backoff until the retry period is over, disables an endpoint after failures in a row, and
gives back what it was sending when stopped."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from handlers.feature import Reacting
from handlers.webhooks.courier import Courier
from handlers.webhooks.deliveries import ClaimedDelivery, DeliveryStatus
from handlers.webhooks.fan_out import Doorbell
from handlers.webhooks.posting import Answer
from handlers.webhooks.signature import verify
from persistence.webhooks import DeliveryTarget
from schema import ids
from tests.unit.webhook_book import FakeBook

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HOOK = "https://hooks.example.com/orderdesk"


@dataclass
class FakeEndpoint:
    """Answers each request with the next status of `statuses` (None: no answer)."""

    statuses: list[int | None]
    requests: list[tuple[str, bytes, Mapping[str, str]]] = field(default_factory=list)

    async def __call__(self, url: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        self.requests.append((url, body, headers))
        status = self.statuses.pop(0)
        if status is None:
            return Answer(None, "could not connect: refused", None, 3)
        return Answer(status, None if 200 <= status < 300 else f"answered {status}", "ok", 3)


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


def claimed(number: int = 0, webhook: str = "w1", delivery: str = "d1") -> ClaimedDelivery:
    return ClaimedDelivery(delivery, webhook, "e1", "req-1", '{"id":"x"}', NOW, number, "c.1")


def courier_over(
    endpoint: FakeEndpoint,
    *,
    book: FakeBook | None = None,
    active: bool = True,
    disabled: list[tuple[str, str]] | None = None,
    clock: Clock | None = None,
    **reacting: Any,
) -> tuple[Courier, FakeBook]:
    book = book or FakeBook()
    seen = disabled if disabled is not None else []

    async def targets(webhook_id: str) -> DeliveryTarget | None:
        return DeliveryTarget(HOOK, "whsec_test", active) if webhook_id != "gone" else None

    async def disable(delivery: ClaimedDelivery, reason: str) -> None:
        seen.append((delivery.webhook_id, reason))

    settings = {"webhook_retry_delay": 10.0, "webhook_retry_for": 60.0, **reacting}
    courier = Courier(
        book=book,
        targets=targets,
        post=endpoint,
        disable=disable,
        reacting=Reacting(**settings),
        clock=clock or Clock(),
        doorbell=Doorbell(),
        attempt_deadline=1.0,
        jitter=lambda: 0.0,
    )
    return courier, book


async def test_a_delivery_is_posted_signed_with_its_id_and_recorded_delivered() -> None:
    endpoint = FakeEndpoint([204])
    courier, book = courier_over(endpoint)
    answer = await courier.attempt(claimed())
    assert answer is not None
    assert answer.succeeded
    url, body, headers = endpoint.requests[0]
    assert (url, body) == (HOOK, b'{"id":"x"}')
    assert headers["Content-Type"] == "application/json"
    assert headers["Orderdesk-Delivery"] == ids.global_id("WebhookDelivery", "d1")
    assert verify(headers["Orderdesk-Signature"], "whsec_test", body, now=NOW.timestamp())
    (attempt,) = book.attempts
    assert (attempt.number, attempt.status, attempt.status_code, attempt.next_retry_at) == (
        1,
        DeliveryStatus.DELIVERED,
        204,
        None,
    )


async def test_a_failure_is_retried_with_backoff_until_the_retry_period_is_over() -> None:
    clock = Clock()
    endpoint = FakeEndpoint([500, None, 503])
    courier, book = courier_over(endpoint, clock=clock)
    await courier.attempt(claimed(0))
    clock.now = NOW + timedelta(seconds=10)
    await courier.attempt(claimed(1))
    clock.now = NOW + timedelta(seconds=45)
    await courier.attempt(claimed(2))
    assert [(a.number, a.status, a.status_code, a.next_retry_at) for a in book.attempts] == [
        (1, DeliveryStatus.PENDING, 500, NOW + timedelta(seconds=10)),
        (2, DeliveryStatus.PENDING, None, NOW + timedelta(seconds=30)),
        # The next wait (40 s) would end past the 60 s it may be retried for.
        (3, DeliveryStatus.FAILED, 503, None),
    ]
    assert book.attempts[1].error == "could not connect: refused"


async def test_failures_in_a_row_across_deliveries_disable_it_and_a_success_resets() -> None:
    disabled: list[tuple[str, str]] = []
    endpoint = FakeEndpoint([500, 500, 200, 500, 500, 500])
    courier, _ = courier_over(endpoint, disabled=disabled, webhook_max_failures=3)
    for index in range(6):
        await courier.attempt(claimed(0, delivery=f"d{index}"))
        if index < 5:
            assert disabled == []
    assert disabled == [
        ("w1", "disabled after 3 failed attempts in a row; the last: answered 500"),
    ]


async def test_a_delivery_of_a_disabled_or_missing_webhook_is_cancelled_unsent() -> None:
    endpoint = FakeEndpoint([])
    courier, book = courier_over(endpoint, active=False)
    assert await courier.attempt(claimed()) is None
    assert await courier.attempt(replace(claimed(), webhook_id="gone")) is None
    assert (endpoint.requests, book.cancelled) == ([], ["d1", "d1"])


async def test_a_stopped_courier_gives_back_what_it_was_sending() -> None:
    class Hanging(FakeEndpoint):
        async def __call__(self, url: str, body: bytes, headers: Mapping[str, str]) -> Answer:
            await asyncio.Event().wait()
            raise AssertionError("never answered")

    class Due(FakeBook):
        async def claim(
            self, *, now: datetime, until: datetime, token: str, limit: int
        ) -> list[ClaimedDelivery]:
            return [replace(claimed(), claim=token)]

    idle, idle_book = courier_over(FakeEndpoint([]))
    await idle.start()
    await idle.stop()
    assert idle_book.released == []
    busy, book = courier_over(Hanging([]), book=Due())
    assert await busy.send_due() == 1
    await busy.stop()
    assert len(book.released) == 1
    assert book.attempts == []
