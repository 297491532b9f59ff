"""What a client reads when a command is refused: the domain's words for each rule, through
the real mediator and pipeline over in-memory fakes, and nothing of pydantic's phrasing."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

import pytest
from pydantic import Field

from domain.errors import ValidationFailed
from domain.orders import Address
from handlers.customers import RegisterCustomer
from handlers.orders import CancelOrder, LineRequest, PlaceOrder
from handlers.products import CreateProduct, DeleteProduct, RestockProduct, UpdateProduct
from handlers.validation import Says, check
from mediator import Command, Context, Mediator
from tests.unit.fakes import FakeStore, as_customer, as_staff, fake_mediator

ADDRESS = Address(street="1 Main St", city="Springfield", postal_code="12345", country="US")
COUNTRY = 'a two-letter ISO country code, e.g. "DE"'
PYDANTIC_PHRASING = ("should", "Input", "after validation", "String", "Tuple", "Value error")


@pytest.fixture
async def mediator(store: FakeStore) -> Mediator:
    built = fake_mediator(store)
    await built.send(RegisterCustomer(name="Ada", email="ada@example.com"))  # c1
    for sku, currency in (("A", "USD"), ("B", "USD"), ("E", "EUR"), ("GONE", "USD")):
        created = CreateProduct(sku=sku, name=sku, price=Decimal(5), currency=currency, stock=9)
        await built.send(created, as_staff())  # p1 to p4
    await built.send(DeleteProduct("p4"), as_staff())
    return built


def placing(*lines: tuple[str, int], **changes: Any) -> PlaceOrder:
    order = PlaceOrder(
        customer_id="c1",
        lines=tuple(LineRequest(product, quantity) for product, quantity in lines),
        shipping_address=ADDRESS,
    )
    return dataclasses.replace(order, **changes)


def address(**changes: str) -> Address:
    return dataclasses.replace(ADDRESS, **changes)


async def refusal(mediator: Mediator, command: Command[Any], ctx: Context) -> list[str]:
    """Each issue as `path: message`, in the order the client gets them."""
    with pytest.raises(ValidationFailed) as refused:
        await mediator.send(command, ctx)
    return [f"{'.'.join(issue.path)}: {issue.message}" for issue in refused.value.issues]


ORDER_REFUSALS: list[tuple[PlaceOrder, list[str]]] = [
    (placing(), ["lines: an order needs at least one line"]),
    (placing(*[("p1", 1)] * 51), ["lines: an order has at most 50 lines"]),
    (
        placing(("p1", 0), ("p2", 1001)),
        [
            "lines.0.quantity: a quantity is at least 1",
            "lines.1.quantity: a quantity is at most 1000",
        ],
    ),
    (placing(("p1", -5)), ["lines.0.quantity: a quantity is at least 1"]),
    (placing(("nope", 1)), ["lines.0.product_id: no product has this id"]),
    (placing(("x" * 65, 1)), ["lines.0.product_id: no product has this id"]),
    (
        placing(("p1", 1), ("p1", 2)),
        ["lines.1.product_id: this product is on another line already"],
    ),
    (placing(("p4", 1)), ["lines.0.product_id: this product is no longer sold"]),
    (
        placing(("p1", 1), ("p3", 1)),
        ["lines: an order is in one currency; these lines are in EUR, USD"],
    ),
    (
        placing(("p1", 1), shipping_address=address(country="usa")),
        [f"shipping_address.country: {COUNTRY}"],
    ),
    (
        placing(("p1", 1), shipping_address=address(country="de")),
        [f"shipping_address.country: {COUNTRY}"],
    ),
    (
        placing(("p1", 1), shipping_address=address(street=" ", postal_code="")),
        [
            "shipping_address.street: a street is required",
            "shipping_address.postal_code: a postal code is required",
        ],
    ),
    (
        placing(("p1", 1), shipping_address=address(city="C" * 101, state="S" * 101)),
        [
            "shipping_address.city: a city is at most 100 characters",
            "shipping_address.state: a state is at most 100 characters",
        ],
    ),
    (
        placing(("p1", 1), special_instructions="i" * 2001),
        ["special_instructions: special instructions are at most 2000 characters"],
    ),
    (
        placing(("p1", 1), shipping_address=address(street="1 Main\x00St")),
        ["shipping_address.street: text cannot contain NUL characters"],
    ),
    (placing(("p1", 1), idempotency_key=""), ["idempotency_key: at least 1 character"]),
    (placing(("p1", 1), idempotency_key="k" * 201), ["idempotency_key: at most 200 characters"]),
]


@pytest.mark.parametrize(("command", "told"), ORDER_REFUSALS)
async def test_a_refused_order_says_each_rule_in_the_domains_words(
    mediator: Mediator, store: FakeStore, command: PlaceOrder, told: list[str]
) -> None:
    before = list(store.events)
    assert await refusal(mediator, command, as_customer("c1")) == told
    assert store.events == before


async def test_staff_are_told_to_name_the_customer(mediator: Mediator) -> None:
    command = placing(("p1", 1), customer_id=None)
    assert await refusal(mediator, command, as_staff()) == [
        "customer_id: staff placing an order must name its customer"
    ]


async def test_every_broken_rule_of_an_order_is_told_at_once(mediator: Mediator) -> None:
    command = placing(
        ("p1", 0),
        shipping_address=address(city="", country="Germany"),
        idempotency_key="",
    )
    assert await refusal(mediator, command, as_customer("c1")) == [
        "shipping_address.city: a city is required",
        f"shipping_address.country: {COUNTRY}",
        "lines.0.quantity: a quantity is at least 1",
        "idempotency_key: at least 1 character",
    ]


def creating(**changes: Any) -> CreateProduct:
    return dataclasses.replace(
        CreateProduct(sku="ANV-1", name="Anvil", price=Decimal("19.50")), **changes
    )


SKU_RULE = "sku: a SKU is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"

PRODUCT_REFUSALS: list[tuple[Command[Any], list[str]]] = [
    (creating(sku="-x"), [SKU_RULE]),
    (creating(sku="s" * 65), [SKU_RULE]),
    (creating(name=" "), ["name: a name is required"]),
    (
        creating(name="N" * 201),
        ["name: a name is at most 200 characters"],
    ),
    (
        creating(description="d" * 5001),
        ["description: a description is at most 5000 characters"],
    ),
    (
        creating(price=Decimal("-0.01")),
        ["price: a price cannot be negative"],
    ),
    (
        creating(price=Decimal("1.00001")),
        ["price: a price has at most 4 decimal places"],
    ),
    (
        creating(price=Decimal("1e12")),
        ["price: a price is less than 1000000000000"],
    ),
    # Refused by the type before the domain sees it: the constraint's plain wording.
    (
        creating(price=Decimal("NaN")),
        ["price: a finite number"],
    ),
    (
        creating(currency="usd"),
        ['currency: a three-letter ISO currency code, e.g. "USD"'],
    ),
    (creating(stock=-1), ["stock: stock cannot be negative"]),
    (
        creating(stock=1_000_000_001),
        ["stock: stock is at most 1000000000"],
    ),
    (UpdateProduct("p1", name=""), ["name: a name is required"]),
    (UpdateProduct("p1", price=Decimal(-1)), ["price: a price cannot be negative"]),
    (RestockProduct("p1", 0), ["quantity: a quantity is at least 1"]),
    (
        RestockProduct("p1", 999_999_995),
        ["quantity: stock is at most 1000000000; this would take it to 1000000004"],
    ),
]


@pytest.mark.parametrize(("command", "told"), PRODUCT_REFUSALS)
async def test_a_refused_product_change_says_each_rule_in_the_domains_words(
    mediator: Mediator, store: FakeStore, command: Command[Any], told: list[str]
) -> None:
    before = list(store.events)
    assert await refusal(mediator, command, as_staff()) == told
    assert store.events == before


async def test_a_refused_cancellation_says_how_long_a_reason_may_be(mediator: Mediator) -> None:
    await mediator.send(placing(("p1", 1)), as_customer("c1"))
    assert await refusal(mediator, CancelOrder("o1", reason="r" * 501), as_customer("c1")) == [
        "reason: a reason is at most 500 characters"
    ]


async def test_no_refusal_uses_pydantics_phrasing(mediator: Mediator) -> None:
    """The cases above with every kind of failure, checked for the text pydantic would have
    put there: a rule added without its words would bring that back."""
    told = [m for command, _ in ORDER_REFUSALS for m in await refusal_of(mediator, command)]
    told += [m for command, _ in PRODUCT_REFUSALS for m in await refusal_of(mediator, command)]
    assert told
    assert [m for m in told for phrase in PYDANTIC_PHRASING if phrase in m] == []


async def refusal_of(mediator: Mediator, command: Command[Any]) -> list[str]:
    ctx = as_customer("c1") if isinstance(command, PlaceOrder) else as_staff()
    return await refusal(mediator, command, ctx)


# ---------------------------------------------------------------- the rules' own wording


@dataclass(frozen=True, slots=True)
class Part:
    code: Annotated[str, Field(pattern=r"^[A-Z]+$"), Says(pattern="a code is capital letters")]
    count: Annotated[int, Field(ge=2)] = 2


@dataclass(frozen=True, slots=True)
class Kit:
    """Rules without words of their own, beside rules with them deep inside."""

    label: Annotated[str, Field(min_length=3, max_length=5)]
    parts: Annotated[tuple[Part, ...], Field(min_length=1, max_length=2)]
    spare: Part | None = None
    weight: Annotated[Decimal, Field(gt=0, lt=10)] = Decimal(1)
    size: Annotated[int, Field(le=4)] = 1


def told(kit: Kit) -> list[str]:
    with pytest.raises(ValidationFailed) as refused:
        check(kit)
    return [f"{'.'.join(issue.path)}: {issue.message}" for issue in refused.value.issues]


def test_a_constraint_without_words_is_worded_from_its_bound() -> None:
    part = Part("A")
    assert told(Kit("ab", (part,), weight=Decimal(0), size=5)) == [
        "label: at least 3 characters",
        "weight: more than 0",
        "size: at most 4",
    ]
    assert told(Kit("abcdef", (part,) * 3, weight=Decimal(10))) == [
        "label: at most 5 characters",
        "parts: at most 2 items",
        "weight: less than 10",
    ]
    assert told(Kit("abc", ())) == ["parts: at least 1 item"]


def test_the_words_of_a_rule_are_found_inside_lists_and_optional_values() -> None:
    assert told(Kit("abc", (Part("A"), Part("b", count=1)), spare=Part("c"))) == [
        "parts.1.code: a code is capital letters",
        "parts.1.count: at least 2",
        "spare.code: a code is capital letters",
    ]


def test_a_value_of_the_wrong_kind_is_told_what_it_should_be() -> None:
    wrong: Kit = Kit("abc", (Part("A"),), size="many")  # type: ignore[arg-type]
    assert told(wrong) == ["size: a whole number"]
