"""What the order mutations answer: each one's Success type, and its result union of that
and the errors it can return."""

from __future__ import annotations

from typing import Annotated

import strawberry

from schema.errors import (
    ConflictError,
    InvalidTransitionError,
    NotAuthorizedError,
    NotFoundError,
    OutOfStockError,
    ValidationError,
)
from schema.nodes import Order


@strawberry.type(description="The order was placed and its stock reserved.")
class PlaceOrderSuccess:
    order: Order = strawberry.field(description="The new order, PENDING, at version 1.")


@strawberry.type(description="The order was confirmed.")
class ConfirmOrderSuccess:
    order: Order = strawberry.field(description="The order, now CONFIRMED.")


@strawberry.type(description="The order was shipped.")
class ShipOrderSuccess:
    order: Order = strawberry.field(description="The order, now SHIPPED.")


@strawberry.type(description="The order was delivered.")
class DeliverOrderSuccess:
    order: Order = strawberry.field(description="The order, now DELIVERED.")


@strawberry.type(description="The order was cancelled and its stock given back.")
class CancelOrderSuccess:
    order: Order = strawberry.field(description="The order, now CANCELLED.")


# Each union lists the errors its mutation can return, and only those (schema/results.py).
PlaceOrderResult = Annotated[
    PlaceOrderSuccess | ValidationError | NotFoundError | OutOfStockError | NotAuthorizedError,
    strawberry.union(
        "PlaceOrderResult",
        description="The new order, or why it was not placed: ValidationError (the lines, the "
        "address, an unknown or deleted product), NotFoundError (no such customer), "
        "OutOfStockError, or NotAuthorizedError (signed out, or a customer ordering for "
        "another).",
    ),
]
_MOVE_ERRORS = (
    "ValidationError (the idempotencyKey), NotFoundError (no such order), ConflictError (a "
    "stale expectedVersion), InvalidTransitionError (not from its current status) or "
    "NotAuthorizedError"
)
ConfirmOrderResult = Annotated[
    ConfirmOrderSuccess
    | ValidationError
    | NotFoundError
    | ConflictError
    | InvalidTransitionError
    | NotAuthorizedError,
    strawberry.union(
        "ConfirmOrderResult",
        description=f"The confirmed order, or why not: {_MOVE_ERRORS} (staff only).",
    ),
]
ShipOrderResult = Annotated[
    ShipOrderSuccess
    | ValidationError
    | NotFoundError
    | ConflictError
    | InvalidTransitionError
    | NotAuthorizedError,
    strawberry.union(
        "ShipOrderResult",
        description=f"The shipped order, or why not: {_MOVE_ERRORS} (staff only).",
    ),
]
DeliverOrderResult = Annotated[
    DeliverOrderSuccess
    | ValidationError
    | NotFoundError
    | ConflictError
    | InvalidTransitionError
    | NotAuthorizedError,
    strawberry.union(
        "DeliverOrderResult",
        description=f"The delivered order, or why not: {_MOVE_ERRORS} (staff only).",
    ),
]
CancelOrderResult = Annotated[
    CancelOrderSuccess
    | ValidationError
    | NotFoundError
    | ConflictError
    | InvalidTransitionError
    | NotAuthorizedError,
    strawberry.union(
        "CancelOrderResult",
        description="The cancelled order, or why not: ValidationError (the reason or the "
        "idempotencyKey), NotFoundError (no such order, or another customer's), ConflictError, "
        "InvalidTransitionError (already shipped, delivered or cancelled) or "
        "NotAuthorizedError (signed out).",
    ),
]
