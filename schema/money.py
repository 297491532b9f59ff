"""Money and addresses, as every feature shows them."""

from __future__ import annotations

from decimal import Decimal

import strawberry


@strawberry.type(description="An exact amount (a Decimal string, never a float) in a currency.")
class Money:
    amount: Decimal
    currency: str


@strawberry.type
class Address:
    street: str
    city: str
    state: str
    postal_code: str
    country: str
