"""The domain's and the handlers' enums as GraphQL enums, registered in place, described here.

The domain stays free of Strawberry: its enums are plain `enum.Enum`s, and what a frontend
developer reads about each value is written here, beside the registration. A value added to
an enum is in the schema at once; tests/unit/test_schema_descriptions.py fails until it is
described.

Every schema module takes these enums from here rather than from the domain: Strawberry
makes an enum of its own for a plain one it meets in an annotation, and a registration after
that would be a second, different definition of the same name.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TypeVar

import strawberry
from strawberry.types.enum import StrawberryEnumDefinition

from domain.orders import OrderStatus
from handlers.orders import OrderChangeType, OrderSort
from handlers.products import ProductChangeType, ProductSort

E = TypeVar("E", bound=enum.Enum)


def described_enum(
    cls: type[E], *, name: str, description: str, values: Mapping[E, str]
) -> type[E]:
    """Register `cls` as the GraphQL enum `name`, each value with its description."""
    strawberry.enum(cls, name=name, description=description)
    definition: StrawberryEnumDefinition = cls.__strawberry_definition__  # type: ignore[attr-defined]
    described = {member.name: text for member, text in values.items()}
    for value in definition.values:
        value.description = described.get(value.name)
    return cls


described_enum(
    OrderStatus,
    name="OrderStatus",
    description="Where an order is on its way: PENDING → CONFIRMED → SHIPPED → DELIVERED, and "
    "PENDING or CONFIRMED → CANCELLED. Any other move is an InvalidTransitionError.",
    values={
        OrderStatus.PENDING: "Placed, its stock reserved; waiting for staff to confirm it.",
        OrderStatus.CONFIRMED: "Accepted by staff; not yet shipped. Can still be cancelled.",
        OrderStatus.SHIPPED: "Handed to the carrier; can no longer be cancelled.",
        OrderStatus.DELIVERED: "Received by the customer. Final.",
        OrderStatus.CANCELLED: "Withdrawn before shipping; its stock was given back. Final.",
    },
)
described_enum(
    OrderSort,
    name="OrderSort",
    description="The order of a list of orders. A cursor belongs to the sort it was made in.",
    values={
        OrderSort.NEWEST: "Most recently placed first.",
        OrderSort.OLDEST: "Earliest placed first.",
        OrderSort.TOTAL_DESC: "Largest total first (compared as numbers, whatever the "
        "currency); equal totals in a fixed order.",
    },
)
described_enum(
    OrderChangeType,
    name="OrderEventType",
    description="What happened to an order, in an OrderEvent.",
    values={
        OrderChangeType.PLACED: "The order was placed (status PENDING).",
        OrderChangeType.CONFIRMED: "Staff confirmed the order.",
        OrderChangeType.SHIPPED: "The order was shipped.",
        OrderChangeType.DELIVERED: "The order was delivered.",
        OrderChangeType.CANCELLED: "The order was cancelled and its stock given back.",
    },
)
described_enum(
    ProductSort,
    name="ProductSort",
    description="The order of the product catalog. A cursor belongs to the sort it was made in.",
    values={
        ProductSort.NAME_ASC: "By name, A to Z (the default); equal names in a fixed order.",
        ProductSort.PRICE_ASC: "Cheapest first.",
        ProductSort.PRICE_DESC: "Most expensive first.",
        ProductSort.NEWEST: "Most recently created first.",
    },
)
described_enum(
    ProductChangeType,
    name="ProductEventType",
    description="What happened to a product, in a ProductEvent.",
    values={
        ProductChangeType.CREATED: "The product was created.",
        ProductChangeType.UPDATED: "Its name, description or price changed, or an order "
        "reserved or gave back some of its stock.",
        ProductChangeType.RESTOCKED: "Staff added stock.",
        ProductChangeType.DELETED: "The product was deleted; it is no longer sold.",
    },
)

__all__ = [
    "OrderChangeType",
    "OrderSort",
    "OrderStatus",
    "ProductChangeType",
    "ProductSort",
    "described_enum",
]
