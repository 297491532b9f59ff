"""The order emails and the low-stock alert: their handlers, subscribed as the service
subscribes them and published to through the real mediator, over a fake mailer and read
models in a SQLite file; and the templates they fill in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from jinja2 import UndefinedError
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.orders import Address, OrderCancelled, OrderLine, OrderPlaced, OrderShipped
from domain.products import StockReserved
from handlers.feature import Reacting, Wiring
from handlers.mail import Email, render
from handlers.orders.reactions import subscribe_emails
from handlers.products.reactions import crosses, subscribe_alerts
from handlers.reactions import Committed, committed
from mediator import Context, Mediator, PublishError, Registry
from persistence.database import create_engine
from persistence.tables import (
    customer_summaries,
    order_lines,
    order_summaries,
    product_catalog,
    read_metadata,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ADDRESS = Address(street="1 Main St", city="Springfield", postal_code="12345", country="US")
STAFF = "staff@example.com"


@dataclass
class FakeMailer:
    """What was sent, by key, in order; a key sent before is not sent again."""

    sent: list[tuple[str, Email, str]] = field(default_factory=list)

    async def send(self, email: Email, *, key: str, correlation_id: str) -> None:
        if all(key != sent_key for sent_key, _, _ in self.sent):
            self.sent.append((key, email, correlation_id))

    @property
    def emails(self) -> list[Email]:
        return [email for _, email, _ in self.sent]


@pytest.fixture
async def read_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'reads.db'}", for_writes=True)
    async with engine.begin() as connection:
        await connection.run_sync(read_metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
def mailer() -> FakeMailer:
    return FakeMailer()


@pytest.fixture
def mediator(read_engine: AsyncEngine, mailer: FakeMailer) -> Mediator:
    registry = Registry()
    wiring = Wiring(
        read_engine=read_engine,
        scan_engine=read_engine,
        mailer=mailer,
        reacting=Reacting(staff_email=STAFF, low_stock_threshold=5),
    )
    subscribe_emails(registry, wiring)
    subscribe_alerts(registry, wiring)
    return registry.build()


def committed_as(event: Any, event_id: str, *, position: int = 1) -> Committed[Any]:
    return committed(type(event))(
        event, event_id, position, "Order", "o1", 1, NOW, f"request-{event_id}"
    )


async def publish(mediator: Mediator, event: Any, event_id: str) -> None:
    await mediator.publish(committed_as(event, event_id), Context())


PLACED = OrderPlaced(
    order_id="o1",
    customer_id="c1",
    customer_name="Ada",
    customer_email="ada@example.com",
    lines=(
        OrderLine("p1", "Anvil", Decimal("5.00"), 2),
        OrderLine("p2", "Bolt <b>", Decimal("0.25"), 3),
    ),
    currency="EUR",
    total=Decimal("10.75"),
    shipping_address=ADDRESS,
    special_instructions="",
)


async def project_order(engine: AsyncEngine, *, with_lines: bool = True) -> None:
    """The rows the projections would have written for PLACED and its customer."""
    async with engine.begin() as connection:
        await connection.execute(
            insert(customer_summaries).values(
                id="c1",
                name="Ada",
                email="ada@example.com",
                search_text="ada",
                order_count=1,
                lifetime_value=Decimal("10.75"),
                currency="EUR",
                registered_at=NOW,
                registered_position=1,
                version=1,
                last_position=2,
            )
        )
        await connection.execute(
            insert(order_summaries).values(
                id="o1",
                customer_id="c1",
                status="PENDING",
                line_count=2,
                total=Decimal("10.75"),
                currency="EUR",
                street=ADDRESS.street,
                city=ADDRESS.city,
                state="",
                postal_code=ADDRESS.postal_code,
                country=ADDRESS.country,
                special_instructions="",
                placed_at=NOW,
                updated_at=NOW,
                version=1,
                placed_position=2,
                last_position=2,
            )
        )
        if with_lines:
            await connection.execute(
                insert(order_lines),
                [
                    {
                        "order_id": "o1",
                        "line_number": number,
                        "product_id": line.product_id,
                        "product_name": line.product_name,
                        "unit_price": line.unit_price,
                        "quantity": line.quantity,
                        "line_total": line.line_total,
                        "currency": "EUR",
                    }
                    for number, line in enumerate(PLACED.lines, start=1)
                ],
            )


async def add_product(engine: AsyncEngine, name: str = "Anvil <script>alert(1)</script>") -> None:
    async with engine.begin() as connection:
        await connection.execute(
            insert(product_catalog).values(
                id="p1",
                sku="ANV-1",
                name=name,
                search_text=name.lower(),
                description="",
                price=Decimal(5),
                currency="EUR",
                stock=10,
                deleted=False,
                version=1,
                created_at=NOW,
                updated_at=NOW,
                created_position=1,
                last_position=1,
            )
        )


# ---- the order emails


async def test_a_placed_order_is_confirmed_to_its_customer_with_lines_and_total(
    mediator: Mediator, mailer: FakeMailer
) -> None:
    await publish(mediator, PLACED, "e1")

    [(key, email, correlation_id)] = mailer.sent
    assert (key, correlation_id) == ("orders.confirmation_email:e1", "request-e1")
    assert email.to == "ada@example.com"
    assert "10.75 EUR" in email.subject
    assert "2 x Anvil at 5.00 EUR: 10.00 EUR" in email.text
    assert "3 x Bolt <b> at 0.25 EUR: 0.75 EUR" in email.text
    assert "Total: 10.75 EUR" in email.text
    assert "Springfield" in email.text
    assert email.html is not None
    assert "Bolt &lt;b&gt;" in email.html
    assert "<b>" not in email.html


async def test_a_redelivered_event_sends_under_the_same_key(
    mediator: Mediator, mailer: FakeMailer
) -> None:
    await publish(mediator, PLACED, "e1")
    await publish(mediator, PLACED, "e1")

    assert [key for key, _, _ in mailer.sent] == ["orders.confirmation_email:e1"]


async def test_a_shipped_order_is_told_from_the_read_models(
    mediator: Mediator, mailer: FakeMailer, read_engine: AsyncEngine
) -> None:
    await project_order(read_engine)

    await publish(mediator, OrderShipped("o1"), "e2")

    [(key, email, _)] = mailer.sent
    assert key == "orders.shipping_email:e2"
    assert email.to == "ada@example.com"
    assert "shipped" in email.text
    assert "2 x Anvil" in email.text
    assert "Total: 10.75 EUR" in email.text


async def test_a_cancelled_order_says_its_stock_was_released_and_why(
    mediator: Mediator, mailer: FakeMailer, read_engine: AsyncEngine
) -> None:
    await project_order(read_engine)

    cancelled = OrderCancelled("o1", "c1", Decimal("10.75"), "EUR", reason="changed my mind")
    await publish(mediator, cancelled, "e3")

    [(key, email, _)] = mailer.sent
    assert key == "orders.cancellation_email:e3"
    assert email.subject == "Your order is cancelled"
    assert "released" in email.text
    assert "(reason: changed my mind)" in email.text


async def test_an_expired_order_is_said_to_be_unconfirmed(
    mediator: Mediator, mailer: FakeMailer, read_engine: AsyncEngine
) -> None:
    await project_order(read_engine)

    await publish(mediator, OrderCancelled("o1", "c1", Decimal(0), "EUR", "expired"), "e3")

    assert "not confirmed in time" in mailer.emails[0].text


async def test_a_cancellation_without_a_reason_gives_none(
    mediator: Mediator, mailer: FakeMailer, read_engine: AsyncEngine
) -> None:
    await project_order(read_engine)

    await publish(mediator, OrderCancelled("o1", "c1", Decimal(0), "EUR"), "e3")

    assert "reason" not in mailer.emails[0].text


@pytest.mark.parametrize("with_lines", [False, True])
async def test_an_order_the_read_models_do_not_show_yet_sends_nothing_and_fails(
    mediator: Mediator, mailer: FakeMailer, read_engine: AsyncEngine, with_lines: bool
) -> None:
    if with_lines:
        # The summary without its lines is never committed so, but a half-read is refused.
        async with read_engine.begin() as connection:
            await connection.run_sync(read_metadata.drop_all, tables=[order_lines])
            await connection.run_sync(read_metadata.create_all, tables=[order_lines])
        await project_order(read_engine, with_lines=False)

    with pytest.raises(PublishError) as failed:
        await publish(mediator, OrderShipped("o1"), "e2")

    assert isinstance(failed.value.failures[0][1], LookupError)
    assert mailer.sent == []


def test_nothing_is_subscribed_without_a_mailer(read_engine: AsyncEngine) -> None:
    registry = Registry()
    wiring = Wiring(read_engine=read_engine, scan_engine=read_engine)
    subscribe_emails(registry, wiring)
    subscribe_alerts(registry, wiring)

    built = registry.build()

    assert built.subscribers(committed(OrderPlaced)) == ()
    assert built.subscribers(committed(StockReserved)) == ()


# ---- the low-stock alert


def reserved(quantity: int, stock: int) -> StockReserved:
    return StockReserved("p1", "o1", quantity, stock)


@pytest.mark.parametrize(
    ("quantity", "stock", "alerts"),
    [
        (2, 6, False),  # 8 → 6: still above
        (1, 5, True),  # 6 → 5: at the threshold
        (4, 3, True),  # 7 → 3: through it
        (1, 4, False),  # 5 → 4: below already
        (3, 0, False),  # 3 → 0: below already
    ],
)
def test_only_a_reservation_that_takes_stock_across_the_threshold_crosses(
    quantity: int, stock: int, alerts: bool
) -> None:
    assert crosses(reserved(quantity, stock), 5) is alerts


async def test_staff_hear_once_when_stock_falls_to_the_threshold(
    mediator: Mediator, mailer: FakeMailer, read_engine: AsyncEngine
) -> None:
    await add_product(read_engine)

    await publish(mediator, reserved(2, 6), "r1")
    await publish(mediator, reserved(2, 4), "r2")
    await publish(mediator, reserved(2, 2), "r3")

    [(key, email, _)] = mailer.sent
    assert key == "products.low_stock_alert:r2"
    assert email.to == STAFF
    assert email.subject == "Low stock: Anvil <script>alert(1)</script> (ANV-1) has 4 left"
    assert "<script>" not in (email.html or "")
    assert "&lt;script&gt;" in (email.html or "")


async def test_a_fall_after_a_restock_is_a_new_alert(
    mediator: Mediator, mailer: FakeMailer, read_engine: AsyncEngine
) -> None:
    await add_product(read_engine, "Anvil")

    await publish(mediator, reserved(5, 5), "r1")
    await publish(mediator, reserved(1, 4), "r2")
    # restocked to 10 meanwhile
    await publish(mediator, reserved(6, 4), "r3")

    assert [key for key, _, _ in mailer.sent] == [
        "products.low_stock_alert:r1",
        "products.low_stock_alert:r3",
    ]


async def test_a_product_missing_from_the_catalog_is_tried_again(
    mediator: Mediator, mailer: FakeMailer
) -> None:
    with pytest.raises(PublishError):
        await publish(mediator, reserved(2, 4), "r1")

    assert mailer.sent == []


def test_no_alert_is_subscribed_without_a_staff_address(read_engine: AsyncEngine) -> None:
    registry = Registry()
    wiring = Wiring(read_engine=read_engine, scan_engine=read_engine, mailer=FakeMailer())
    subscribe_alerts(registry, wiring)

    assert registry.build().subscribers(committed(StockReserved)) == ()


# ---- templates


def test_rendering_escapes_html_only_and_keeps_the_subject_one_line(tmp_path: Path) -> None:
    (tmp_path / "note.subject.txt").write_text("Hello {{ name }}\n")
    (tmp_path / "note.txt").write_text("Dear {{ name }}, {{ amount | money('JPY') }}\n")
    (tmp_path / "note.html").write_text("<p>Dear {{ name }}</p>\n")

    email = render(tmp_path, "note", "ada@example.com", name="<i>Ada</i>\nBcc: x", amount=5)

    assert email.subject == "Hello <i>Ada</i> Bcc: x"
    assert email.text == "Dear <i>Ada</i>\nBcc: x, 5.00 JPY\n"
    assert email.html == "<p>Dear &lt;i&gt;Ada&lt;/i&gt;\nBcc: x</p>\n"


def test_a_value_the_template_names_but_was_not_given_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "note.subject.txt").write_text("Hello {{ name }}")
    (tmp_path / "note.txt").write_text("{{ missing }}")

    with pytest.raises(UndefinedError):
        render(tmp_path, "note", "ada@example.com", name="Ada")


def test_an_email_without_an_html_template_is_plain_text(tmp_path: Path) -> None:
    (tmp_path / "note.subject.txt").write_text("Hi")
    (tmp_path / "note.txt").write_text("Plain")

    assert render(tmp_path, "note", "ada@example.com").html is None
