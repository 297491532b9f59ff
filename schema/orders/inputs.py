"""The inputs of the order mutations, each making its command."""

from __future__ import annotations

from dataclasses import asdict

import strawberry

from domain.errors import FieldIssue, ValidationFailed
from domain.orders import MAX_ADDRESS_FIELD, MAX_INSTRUCTIONS, MAX_REASON, Address
from handlers.idempotency import MAX_KEY_LENGTH
from handlers.orders import (
    CancelOrder,
    ConfirmOrder,
    DeliverOrder,
    LineRequest,
    PlaceOrder,
    ShipOrder,
)
from handlers.written import Written
from mediator import Command
from schema.ids import SentId, local_id
from schema.nodes import CUSTOMER, ORDER, PRODUCT


@strawberry.input(description="One product of a new order.")
class OrderLineInput:
    product_id: strawberry.ID = strawberry.field(
        description="The product's global id (Product.id); each product on one line only. A "
        "deleted or unknown product is a ValidationError on this field."
    )
    quantity: int = strawberry.field(description="How many units: 1 to 1000.")


def _up_to(field: str) -> str:
    return f"1 to {MAX_ADDRESS_FIELD[field]} characters."


@strawberry.input(description="Where to ship an order.")
class AddressInput:
    street: str = strawberry.field(description=_up_to("street"))
    city: str = strawberry.field(description=_up_to("city"))
    postal_code: str = strawberry.field(description=_up_to("postal_code"))
    country: str = strawberry.field(description="ISO 3166-1 alpha-2, such as US or DE.")
    state: str = strawberry.field(
        default="", description=f"At most {MAX_ADDRESS_FIELD['state']} characters."
    )


@strawberry.input(description="A new order.")
class PlaceOrderInput:
    lines: list[OrderLineInput] = strawberry.field(
        description="1 to 50 lines, all of products priced in one currency."
    )
    shipping_address: AddressInput = strawberry.field(description="Where to ship the order.")
    special_instructions: str = strawberry.field(
        default="", description=f"At most {MAX_INSTRUCTIONS} characters."
    )
    idempotency_key: str | None = strawberry.field(
        default=None,
        description=f"At most {MAX_KEY_LENGTH} characters. Retrying with the same key and "
        "input returns the first order.",
    )
    customer_id: strawberry.ID | None = strawberry.field(
        default=None, description="Staff only: the customer to place the order for."
    )

    def command(self) -> PlaceOrder:
        # A line's product is checked with the other lines (a ValidationError on its field,
        # as an unknown product is); the customer is the one id a NotFoundError names.
        products = [SentId.decode(line.product_id, PRODUCT) for line in self.lines]
        wrong_kind = [
            FieldIssue(("lines", str(i), "product_id"), reason)
            for i, product in enumerate(products)
            if (reason := product.not_of(PRODUCT)) is not None
        ]
        if wrong_kind:
            raise ValidationFailed(wrong_kind)
        return PlaceOrder(
            lines=tuple(
                LineRequest(product.local, line.quantity)
                for product, line in zip(products, self.lines, strict=True)
            ),
            shipping_address=Address(**asdict(self.shipping_address)),
            special_instructions=self.special_instructions,
            customer_id=None if self.customer_id is None else local_id(self.customer_id, CUSTOMER),
            idempotency_key=self.idempotency_key,
        )


MOVE_KEY = (
    f"At most {MAX_KEY_LENGTH} characters. Retrying with the same key and input changes "
    "nothing and returns the order as it is now, even if it has moved on since."
)


ORDER_ID = "The order's global id (Order.id)."
EXPECTED_VERSION = (
    "The order's `version` as you last read it: the move is refused with a ConflictError if "
    "the order has changed since. Null moves it whatever its version."
)


@strawberry.input(description="An order to move to its next status.")
class ChangeOrderInput:
    id: strawberry.ID = strawberry.field(description=ORDER_ID)
    expected_version: int | None = strawberry.field(default=None, description=EXPECTED_VERSION)
    idempotency_key: str | None = strawberry.field(default=None, description=MOVE_KEY)

    def command(self, move: type[ConfirmOrder | ShipOrder | DeliverOrder]) -> Command[Written]:
        return move(
            local_id(self.id, ORDER),
            expected_version=self.expected_version,
            idempotency_key=self.idempotency_key,
        )


@strawberry.input(description="An order to cancel.")
class CancelOrderInput:
    id: strawberry.ID = strawberry.field(description=ORDER_ID)
    reason: str = strawberry.field(
        default="", description=f"Why, for the record: at most {MAX_REASON} characters."
    )
    expected_version: int | None = strawberry.field(default=None, description=EXPECTED_VERSION)
    idempotency_key: str | None = strawberry.field(default=None, description=MOVE_KEY)

    def command(self) -> CancelOrder:
        return CancelOrder(
            local_id(self.id, ORDER),
            reason=self.reason,
            expected_version=self.expected_version,
            idempotency_key=self.idempotency_key,
        )
