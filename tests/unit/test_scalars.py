"""The strict Decimal scalar: one spelling per number, and nothing Python's Decimal also reads."""

from __future__ import annotations

from decimal import Decimal

import pytest

from schema.errors import UserInputError
from schema.scalars import MAX_DECIMAL_DIGITS, parse_decimal

REFUSED = [
    "\u0661\u0662\u0663",  # Arabic-Indic 123
    "\uff11\uff12\uff13",  # full-width 123
    "1_000",
    " 5",
    "5 ",
    "5\n",
    "1e3",
    "1E3",
    "+5",
    "5.",
    ".5",
    "-",
    "",
    "--5",
    "0x10",
    "NaN",
    "-Infinity",
    "Infinity",
    "1,5",
    "1" + "0" * 100_000,
    "0." + "0" * MAX_DECIMAL_DIGITS,
]


@pytest.mark.parametrize("text", REFUSED)
def test_anything_but_ascii_digits_with_a_sign_and_a_fraction_is_refused(text: str) -> None:
    with pytest.raises(UserInputError) as refused:
        parse_decimal(text)
    assert len(refused.value.message) < 300


@pytest.mark.parametrize("number", [5, 1.5, 1e3, True, None, ["1"]])
def test_numbers_and_other_json_values_are_refused(number: object) -> None:
    with pytest.raises(UserInputError):
        parse_decimal(number)


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("19.50", Decimal("19.50")),
        ("-1.5", Decimal("-1.5")),
        ("0", Decimal(0)),
        ("007", Decimal(7)),
        ("9" * MAX_DECIMAL_DIGITS, Decimal("9" * MAX_DECIMAL_DIGITS)),
    ],
)
def test_plain_decimals_are_read_exactly(text: str, amount: Decimal) -> None:
    parsed = parse_decimal(text)
    assert parsed == amount
    assert str(parsed) == str(amount)


def test_negative_zero_is_zero() -> None:
    assert str(parse_decimal("-0.00")) == "0.00"
