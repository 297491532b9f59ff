"""Scalars the schema reads more strictly than Strawberry's own, under the same names."""

from __future__ import annotations

import re
from datetime import UTC, datetime
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
    description="An exact decimal number, as a JSON string, never a number: amounts come out "
    'with two to four decimal places, such as "19.50" or "0.0125", and are meant for a decimal '
    "type (decimal.js, big.js), not a float. Inputs are strings matching "
    f'-?[0-9]+(\\.[0-9]+)? with at most {MAX_DECIMAL_DIGITS} digits, such as "19.50", "19.5" '
    'or "-1.5"; no exponent, "+", spaces, separators or non-ASCII digits. A number instead of '
    "a string is refused, since it may already have lost digits. The syntax is the plain "
    "(exponent-free) form of the specified numeric-string syntax.",
    specified_by_url="https://speleotrove.com/decimal/daconvs.html",
    # Plain notation always: str() would write 1E-7 for a small enough number.
    serialize=lambda amount: f"{amount:f}",
    parse_value=parse_decimal,
)

_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_MAX_DATE_TIME_TEXT = 35


def parse_date_time(value: object) -> datetime:
    """An RFC 3339 date-time, with its offset: without one, a moment names no instant (it
    would be read in the server's zone), so it is refused here rather than guessed."""
    if isinstance(value, str) and len(value) <= _MAX_DATE_TIME_TEXT and _DATE_TIME.fullmatch(value):
        try:
            return datetime.fromisoformat(value.upper())
        except ValueError:
            pass  # a month 13, a February 30th: well formed, but no date
    shown = f"{value!r:.{_SHOWN}}"
    raise UserInputError(
        f"DateTime cannot represent {shown}: write an RFC 3339 date-time with an offset, "
        'such as "2026-12-01T19:00:00Z" or "2026-12-01T20:00:00.5+01:00"'
    )


def serialize_date_time(moment: datetime) -> str:
    """In UTC, as Python's isoformat writes it: microseconds only when there are any."""
    if moment.tzinfo is None:
        # Every stored time is in UTC (persistence/types.py); a naive one is a bug to see.
        raise TypeError(f"a naive datetime has no place in a DateTime: {moment!r}")
    return moment.astimezone(UTC).isoformat()


DATE_TIME: ScalarDefinition = strawberry.scalar(
    name="DateTime",
    description="An instant, as an RFC 3339 date-time string. Output is always in UTC, "
    "written with a +00:00 offset, with microseconds only when they are not zero: "
    '"2026-12-01T19:00:00+00:00", "2026-12-01T19:00:00.123456+00:00". Input takes any RFC 3339 '
    'date-time with an offset: "2026-12-01T19:00:00Z", "2026-12-01T20:00:00+01:00", with up '
    "to nine fractional digits (beyond six, truncated to microseconds). A time without an "
    "offset, a date alone, or any other ISO 8601 form is refused.",
    specified_by_url="https://scalars.graphql.org/andimarek/date-time",
    serialize=serialize_date_time,
    parse_value=parse_date_time,
)

SCALAR_OVERRIDES: dict[object, ScalarDefinition] = {Decimal: DECIMAL, datetime: DATE_TIME}
"""For the schema's scalar_overrides: every `Decimal` and `datetime` field and argument uses
DECIMAL and DATE_TIME."""
