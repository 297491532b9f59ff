"""Scalars the schema reads more strictly than Strawberry's own, under the same names."""

from __future__ import annotations

import re
from decimal import Decimal

import strawberry
from strawberry.types.scalar import ScalarDefinition

from schema.errors import UserInputError

MAX_DECIMAL_DIGITS = 28
"""Decimal's default precision: every number accepted is exact in arithmetic. Far above
what any amount may be (domain/money.py), so the domain still says what is wrong with one
that is too large or too precise."""

_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
# A sign and a point besides the digits: anything longer is refused before it is scanned.
_MAX_DECIMAL_TEXT = MAX_DECIMAL_DIGITS + 2
_SHOWN = 40


def parse_decimal(value: object) -> Decimal:
    """ASCII digits with an optional '-' and fraction, and nothing else.

    Python's Decimal also reads exponents, '+', surrounding spaces, '_' separators, NaN,
    Infinity and the digits of every script ("١٢٣" is 123); each would let two spellings
    of one price, or a value no form meant, through. Numbers (JSON or GraphQL literals)
    are refused as well: a float has lost the exact value before it gets here.

    The error carries BAD_USER_INPUT itself: a literal's parse error reaches the client
    as it is raised, as no error of a variable's or an argument's would.
    """
    if not isinstance(value, str):
        raise UserInputError(
            f'Decimal must be a string of digits such as "19.50", not {value!r:.{_SHOWN}}'
        )
    digits = len(value) - value.startswith("-") - ("." in value)
    if (
        len(value) > _MAX_DECIMAL_TEXT
        or not _DECIMAL.fullmatch(value)
        or digits > MAX_DECIMAL_DIGITS
    ):
        shown = value if len(value) <= _SHOWN else f"{value[:_SHOWN]}…"
        raise UserInputError(
            f"Decimal cannot represent {shown!r}: write at most {MAX_DECIMAL_DIGITS} ASCII "
            'digits, with an optional leading "-" and fraction, such as "19.50" or "-1.5"'
        )
    amount = Decimal(value)
    # "-0" and "0" are one number; only one of them should ever be stored or shown.
    return amount.copy_abs() if amount.is_zero() else amount


DECIMAL: ScalarDefinition = strawberry.scalar(
    name="Decimal",
    description="An exact decimal number, as a string matching -?[0-9]+(\\.[0-9]+)? with at "
    f'most {MAX_DECIMAL_DIGITS} digits, such as "19.50" or "-1.5". No exponent, "+", '
    "spaces, separators or non-ASCII digits; numbers (rather than strings) are refused, "
    "since they may already have lost digits.",
    serialize=str,
    parse_value=parse_decimal,
)

SCALAR_OVERRIDES: dict[object, ScalarDefinition] = {Decimal: DECIMAL}
"""For the schema's scalar_overrides: every `Decimal` field and argument uses DECIMAL."""
