"""The customer: who places orders, and the preferences of its profile."""

from __future__ import annotations

import re
from dataclasses import dataclass

from domain.aggregate import Aggregate
from domain.errors import Issues

MAX_NAME = 200
MAX_EMAIL = 254
MAX_LANGUAGE = 12
"""The longest short tag: a language, a script and a region (`zh-Hant-TW`, `es-419`)."""
DEFAULT_LANGUAGE = "en"

# What a client is told when a rule is broken; the registration's own checks say the same.
NAME_REQUIRED = "a name is required"
NAME_TOO_LONG = f"a name is at most {MAX_NAME} characters"
AN_EMAIL_ADDRESS = "a valid email address"
EMAIL_TOO_LONG = f"an email address is at most {MAX_EMAIL} characters"
A_LANGUAGE_TAG = "a language tag such as en, fr or pt-BR"

LANGUAGE_PATTERN = r"^[A-Za-z]{2,3}(-[A-Za-z]{4})?(-([A-Za-z]{2}|[0-9]{3}))?$"
"""A short BCP 47 tag: a language, then optionally a script and a region, in any case."""
# ASCII: with IGNORECASE alone, [a-z] also matches the Kelvin sign and the long s.
_LANGUAGE = re.compile(LANGUAGE_PATTERN, re.IGNORECASE | re.ASCII)


def normalize_email(email: str) -> str:
    """One spelling per mailbox, so uniqueness means what people expect."""
    return email.strip().lower()


def language_tag(text: str) -> str | None:
    """The tag in BCP 47's own case (`pt-br` is `pt-BR`, `zh-hant` is `zh-Hant`), so one
    language has one spelling; None if `text` is not a short tag."""
    if len(text) > MAX_LANGUAGE or _LANGUAGE.fullmatch(text) is None:
        return None
    language, *subtags = text.split("-")
    spelled = [language.lower()]
    for subtag in subtags:
        spelled.append(subtag.title() if len(subtag) == 4 else subtag.upper())
    return "-".join(spelled)


@dataclass(frozen=True, slots=True)
class Preferences:
    """What a customer chose: whether the shop may send it marketing, and in what language
    it is written to."""

    marketing_opt_in: bool = False
    language: str = DEFAULT_LANGUAGE


@dataclass(frozen=True, slots=True)
class CustomerRegistered:
    customer_id: str
    name: str
    email: str
    # Defaults: events logged before customers chose these at registration still decode.
    marketing_opt_in: bool = False
    language: str = DEFAULT_LANGUAGE


@dataclass(frozen=True, slots=True)
class CustomerProfileCreated:
    """The customer's profile, with the preferences it gave when it registered."""

    customer_id: str
    marketing_opt_in: bool
    language: str


@dataclass(frozen=True, slots=True)
class PreferencesUpdated:
    customer_id: str
    marketing_opt_in: bool
    language: str
    marketing_turned_on: bool = False
    """Whether this update opted in a customer that was not opted in (or had no profile yet):
    what the marketing team hears of."""


CUSTOMER_EVENTS = (CustomerRegistered, CustomerProfileCreated, PreferencesUpdated)


class Customer(Aggregate):
    """A customer, and its profile once it has one.

    The profile lives on the customer's own stream (its events bump the customer's version),
    so a change to it is checked against the customer's version like any other change.
    """

    kind = "Customer"

    def __init__(
        self,
        customer_id: str,
        *,
        name: str,
        email: str,
        preferences: Preferences | None = None,
        version: int = 0,
    ) -> None:
        super().__init__(customer_id, version)
        self.name = name
        self.email = email
        self.preferences = preferences
        """None until the profile is created (a reaction to the registration does that)."""

    @classmethod
    def register(
        cls,
        customer_id: str,
        *,
        name: str,
        email: str,
        marketing_opt_in: bool = False,
        language: str = DEFAULT_LANGUAGE,
    ) -> Customer:
        issues = Issues()
        name = name.strip()
        email = normalize_email(email)
        if not name:
            issues.add("name", NAME_REQUIRED)
        elif len(name) > MAX_NAME:
            issues.add("name", NAME_TOO_LONG)
        local, _, domain = email.partition("@")
        if not local or "." not in domain or len(email) > MAX_EMAIL or " " in email:
            issues.add("email", AN_EMAIL_ADDRESS)
        tag = _checked_language(issues, language)
        issues.raise_if_any()
        customer = cls(customer_id, name=name, email=email)
        customer._record(CustomerRegistered(customer_id, name, email, marketing_opt_in, tag))
        return customer

    def create_profile(self, chosen: Preferences) -> None:
        """Create the profile with the preferences chosen at registration. A profile that
        exists already (created before, or by the customer's own update) is left as it is:
        creating it again changes nothing, so a redelivered reaction is harmless."""
        if self.preferences is not None:
            return
        preferences = _checked(chosen)
        self.preferences = preferences
        self._record(
            CustomerProfileCreated(self.id, preferences.marketing_opt_in, preferences.language)
        )

    def update_preferences(self, wanted: Preferences) -> None:
        """Change the preferences, creating the profile if the reaction has not yet. Like
        any other update it is a change, the same preferences again included."""
        preferences = _checked(wanted)
        was_opted_in = self.preferences is not None and self.preferences.marketing_opt_in
        self.preferences = preferences
        self._record(
            PreferencesUpdated(
                self.id,
                preferences.marketing_opt_in,
                preferences.language,
                marketing_turned_on=preferences.marketing_opt_in and not was_opted_in,
            )
        )


def _checked_language(issues: Issues, language: str) -> str:
    tag = language_tag(language)
    if tag is None:
        issues.add("language", A_LANGUAGE_TAG)
        return language
    return tag


def _checked(preferences: Preferences) -> Preferences:
    issues = Issues()
    tag = _checked_language(issues, preferences.language)
    issues.raise_if_any()
    return Preferences(preferences.marketing_opt_in, tag)
