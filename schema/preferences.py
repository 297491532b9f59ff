"""A customer's preferences, as Customer.preferences and updatePreferences show them."""

from __future__ import annotations

from typing import Self

import strawberry

from domain.customers import Preferences as ChosenPreferences

LANGUAGE = (
    "A short BCP 47 language tag: a language, then optionally a script and a region, such "
    "as `en`, `fr`, `pt-BR`, `es-419` or `zh-Hant-TW`; kept in BCP 47's own case (`pt-br` "
    "is kept as `pt-BR`)."
)


@strawberry.type(
    description="What the customer chose: whether the shop may send it news and offers, and "
    "the language it is written to in."
)
class Preferences:
    marketing_opt_in: bool = strawberry.field(
        description="Whether the customer agreed to hear about news and offers."
    )
    language: str = strawberry.field(description=LANGUAGE)

    @classmethod
    def of(cls, chosen: ChosenPreferences) -> Self:
        return cls(marketing_opt_in=chosen.marketing_opt_in, language=chosen.language)
