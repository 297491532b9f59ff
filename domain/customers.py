"""The customer: who places orders."""

from __future__ import annotations

from dataclasses import dataclass

from domain.aggregate import Aggregate
from domain.errors import Issues

MAX_NAME = 200
MAX_EMAIL = 254

# What a client is told when a rule is broken; the registration's own checks say the same.
NAME_REQUIRED = "a name is required"
NAME_TOO_LONG = f"a name is at most {MAX_NAME} characters"
AN_EMAIL_ADDRESS = "a valid email address"
EMAIL_TOO_LONG = f"an email address is at most {MAX_EMAIL} characters"


def normalize_email(email: str) -> str:
    """One spelling per mailbox, so uniqueness means what people expect."""
    return email.strip().lower()


@dataclass(frozen=True, slots=True)
class CustomerRegistered:
    customer_id: str
    name: str
    email: str


CUSTOMER_EVENTS = (CustomerRegistered,)


class Customer(Aggregate):
    kind = "Customer"

    def __init__(self, customer_id: str, *, name: str, email: str, version: int = 0) -> None:
        super().__init__(customer_id, version)
        self.name = name
        self.email = email

    @classmethod
    def register(cls, customer_id: str, *, name: str, email: str) -> Customer:
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
        issues.raise_if_any()
        customer = cls(customer_id, name=name, email=email)
        customer._record(CustomerRegistered(customer_id, name, email))
        return customer
