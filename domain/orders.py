"""The order: lines copied from the catalog when placed, and the way it moves to delivery."""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from domain.aggregate import Aggregate
from domain.customers import Customer
from domain.errors import FieldIssue, InvalidTransition, Issues
from domain.money import MAX_AMOUNT, canonical_amount
from domain.products import Product

MAX_LINES = 50
MAX_QUANTITY = 1_000
MAX_INSTRUCTIONS = 2_000
MAX_REASON = 500
# As long as the read models' columns, which must hold every order placed.
MAX_ADDRESS_FIELD = {"street": 200, "city": 100, "state": 100, "postal_code": 20, "country": 2}
_COUNTRY = re.compile(r"[A-Z]{2}")
_ADDRESS_PART = {
    "street": "a street",
    "city": "a city",
    "state": "a state",
    "postal_code": "a postal code",
}

# What a client is told when one of the rules above is broken; the commands' own checks,
# made before anything is loaded, say the same.
NEEDS_A_LINE = "an order needs at least one line"
TOO_MANY_LINES = f"an order has at most {MAX_LINES} lines"
QUANTITY_TOO_SMALL = "a quantity is at least 1"
QUANTITY_TOO_LARGE = f"a quantity is at most {MAX_QUANTITY}"
COUNTRY_CODE = 'a two-letter ISO country code, e.g. "DE"'


class OrderStatus(enum.Enum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    CANCELLED = "CANCELLED"


# The only moves an order can make; every other is an InvalidTransition.
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset({OrderStatus.CONFIRMED, OrderStatus.CANCELLED}),
    OrderStatus.CONFIRMED: frozenset({OrderStatus.SHIPPED, OrderStatus.CANCELLED}),
    OrderStatus.SHIPPED: frozenset({OrderStatus.DELIVERED}),
    OrderStatus.DELIVERED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class Address:
    street: str
    city: str
    postal_code: str
    country: str
    state: str = ""

    def issues(self) -> list[FieldIssue]:
        found = [
            FieldIssue((field,), f"{_ADDRESS_PART[field]} is required")
            for field in ("street", "city", "postal_code")
            if not getattr(self, field).strip()
        ]
        found += [
            FieldIssue((field,), f"{_ADDRESS_PART[field]} is at most {longest} characters")
            for field, longest in MAX_ADDRESS_FIELD.items()
            if field != "country" and len(getattr(self, field)) > longest
        ]
        if not _COUNTRY.fullmatch(self.country):
            found.append(FieldIssue(("country",), COUNTRY_CODE))
        return found


@dataclass(frozen=True, slots=True)
class OrderLine:
    product_id: str
    product_name: str
    unit_price: Decimal
    quantity: int

    @property
    def line_total(self) -> Decimal:
        return self.unit_price * self.quantity


@dataclass(frozen=True, slots=True)
class OrderPlaced:
    """The order as placed; the customer's name and email as they were, like the prices."""

    order_id: str
    customer_id: str
    customer_name: str
    customer_email: str
    lines: tuple[OrderLine, ...]
    currency: str
    total: Decimal
    shipping_address: Address
    special_instructions: str


@dataclass(frozen=True, slots=True)
class OrderConfirmed:
    order_id: str


@dataclass(frozen=True, slots=True)
class OrderShipped:
    order_id: str


@dataclass(frozen=True, slots=True)
class OrderDelivered:
    order_id: str


@dataclass(frozen=True, slots=True)
class OrderWithdrawn:
    """An order that no longer counts toward what its customer has spent. Every event that
    takes an order out of the sums is one (a cancel, and any later kind), so read models that
    keep sums handle them by this type, and a new kind needs nothing from them."""

    order_id: str
    customer_id: str
    total: Decimal
    currency: str = ""


@dataclass(frozen=True, slots=True)
class OrderCancelled(OrderWithdrawn):
    reason: str = ""


ORDER_EVENTS = (OrderPlaced, OrderConfirmed, OrderShipped, OrderDelivered, OrderCancelled)


@dataclass(frozen=True, slots=True)
class Wanted:
    """A line as the customer asks for it: a product (already loaded) and a quantity."""

    product: Product
    quantity: int


class Order(Aggregate):
    kind = "Order"

    def __init__(
        self,
        order_id: str,
        *,
        customer_id: str,
        lines: Sequence[OrderLine],
        currency: str,
        shipping_address: Address,
        special_instructions: str,
        status: OrderStatus = OrderStatus.PENDING,
        version: int = 0,
    ) -> None:
        super().__init__(order_id, version)
        self.customer_id = customer_id
        self.lines = tuple(lines)
        self.currency = currency
        self.shipping_address = shipping_address
        self.special_instructions = special_instructions
        self.status = status

    @property
    def total(self) -> Decimal:
        return canonical_amount(sum((line.line_total for line in self.lines), Decimal(0)))

    @classmethod
    def place(
        cls,
        order_id: str,
        *,
        customer: Customer,
        wanted: Sequence[Wanted],
        shipping_address: Address,
        special_instructions: str = "",
    ) -> Order:
        """Copy names and prices onto the lines and reserve the stock of each product.

        Either every line's stock is reserved or the first shortfall raises OutOfStock;
        the caller's unit of work is then left uncommitted, so nothing was reserved.
        """
        issues = Issues()
        if not wanted:
            issues.add("lines", NEEDS_A_LINE)
        elif len(wanted) > MAX_LINES:
            issues.add("lines", TOO_MANY_LINES)
        seen: set[str] = set()
        for index, line in enumerate(wanted):
            if line.quantity < 1:
                issues.add(f"lines.{index}.quantity", QUANTITY_TOO_SMALL)
            elif line.quantity > MAX_QUANTITY:
                issues.add(f"lines.{index}.quantity", QUANTITY_TOO_LARGE)
            if line.product.id in seen:
                issues.add(f"lines.{index}.product_id", "this product is on another line already")
            seen.add(line.product.id)
            if line.product.deleted:
                issues.add(f"lines.{index}.product_id", "this product is no longer sold")
        currencies = {line.product.price.currency for line in wanted}
        if len(currencies) > 1:
            issues.add(
                "lines",
                "an order is in one currency; these lines are in " + ", ".join(sorted(currencies)),
            )
        issues.add_within("shipping_address", shipping_address.issues())
        total = sum((w.product.price.amount * w.quantity for w in wanted), Decimal(0))
        if total >= MAX_AMOUNT:
            issues.add("lines", f"an order's total is less than {MAX_AMOUNT}")
        if len(special_instructions) > MAX_INSTRUCTIONS:
            issues.add(
                "special_instructions",
                f"special instructions are at most {MAX_INSTRUCTIONS} characters",
            )
        issues.raise_if_any()

        lines = [
            OrderLine(w.product.id, w.product.name, w.product.price.amount, w.quantity)
            for w in wanted
        ]
        order = cls(
            order_id,
            customer_id=customer.id,
            lines=lines,
            currency=currencies.pop(),
            shipping_address=shipping_address,
            special_instructions=special_instructions,
        )
        order._record(
            OrderPlaced(
                order_id,
                customer.id,
                customer.name,
                customer.email,
                order.lines,
                order.currency,
                order.total,
                shipping_address,
                special_instructions,
            )
        )
        for line in wanted:
            line.product.reserve(line.quantity, order_id)
        return order

    def _move(self, to: OrderStatus) -> None:
        if to not in TRANSITIONS[self.status]:
            raise InvalidTransition(self.kind, self.id, self.status.value, to.value)
        self.status = to

    def confirm(self) -> None:
        self._move(OrderStatus.CONFIRMED)
        self._record(OrderConfirmed(self.id))

    def ship(self) -> None:
        self._move(OrderStatus.SHIPPED)
        self._record(OrderShipped(self.id))

    def deliver(self) -> None:
        self._move(OrderStatus.DELIVERED)
        self._record(OrderDelivered(self.id))

    def cancel(self, reason: str, products: dict[str, Product]) -> None:
        """Cancel and give each line's reserved stock back to its product (all loaded)."""
        if len(reason) > MAX_REASON:
            issues = Issues()
            issues.add("reason", f"a reason is at most {MAX_REASON} characters")
            issues.raise_if_any()
        self._move(OrderStatus.CANCELLED)
        self._record(
            OrderCancelled(self.id, self.customer_id, self.total, self.currency, reason=reason)
        )
        for line in self.lines:
            products[line.product_id].release(line.quantity, self.id)
