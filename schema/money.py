"""Money and addresses, as every feature shows them."""

from __future__ import annotations

from decimal import Decimal

import strawberry


@strawberry.type(
    description="An exact amount in a currency. Add and compare amounts with a decimal type, "
    "never a float."
)
class Money:
    amount: Decimal = strawberry.field(
        description='The amount, a Decimal string with two to four decimal places, e.g. "19.50".'
    )
    currency: str = strawberry.field(
        description="The three-letter ISO 4217 currency code, e.g. USD."
    )


@strawberry.type(description="A postal address, as it was given when the order was placed.")
class Address:
    street: str = strawberry.field(description="The street and number, 1 to 200 characters.")
    city: str = strawberry.field(description="The city or town, 1 to 100 characters.")
    state: str = strawberry.field(
        description="The state, province or region, at most 100 characters; an empty string "
        "where there is none."
    )
    postal_code: str = strawberry.field(description="The postal or ZIP code, 1 to 20 characters.")
    country: str = strawberry.field(
        description="The ISO 3166-1 alpha-2 country code, e.g. US or DE."
    )
