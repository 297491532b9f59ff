"""Money: an exact amount in one currency."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from domain.errors import Issues

# Four places hold every ISO 4217 minor unit (most use two, a few three) with room for
# per-unit prices below a cent; the read models store amounts scaled by this exactly.
MAX_DECIMAL_PLACES = 4
MAX_AMOUNT = Decimal("1000000000000")


def canonical_amount(amount: Decimal) -> Decimal:
    """The amount with two to four decimal places, so equal amounts always print alike."""
    exact = amount.quantize(Decimal(1).scaleb(-MAX_DECIMAL_PLACES))
    for places in range(2, MAX_DECIMAL_PLACES):
        shorter = exact.quantize(Decimal(1).scaleb(-places))
        if shorter == exact:
            return shorter
    return exact


@dataclass(frozen=True, slots=True)
class Money:
    amount: Decimal
    currency: str

    @staticmethod
    def check(issues: Issues, amount: Decimal, currency: str, path: str) -> None:
        """Add to `issues` what is wrong with an amount and currency as a price."""
        if not amount.is_finite():
            issues.add(path, "a price is a finite number")
        elif amount < 0:
            issues.add(path, "a price cannot be negative")
        elif amount >= MAX_AMOUNT:
            issues.add(path, f"a price is less than {MAX_AMOUNT}")
        elif -int(amount.as_tuple().exponent) > MAX_DECIMAL_PLACES:
            issues.add(path, f"a price has at most {MAX_DECIMAL_PLACES} decimal places")
        if not (len(currency) == 3 and currency.isascii() and currency.isupper()):
            issues.add("currency", 'a three-letter ISO currency code, e.g. "USD"')
